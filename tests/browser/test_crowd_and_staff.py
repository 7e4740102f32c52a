"""Crowd studies end to end in a real browser (Prolific, MTurk in its frame) and the live staff dashboard."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.browser.conftest import wait_until
from tests.servers import free_port, manage, site_query

pytestmark = pytest.mark.browser

# Two crowd campaigns with a quota of two comparisons, and a researcher who owns neither.
SITE_SEED = """
from django.contrib.auth.models import User
from annotation.models import Campaign
from annotation.services import SeedReport, grant_researcher_role, set_campaign_status, sync_criteria
from generation.models import Prompt
from generation.services import GeneratorSpec, sync_generator

generators = []
for seed, palette in ((1, [0.6, 0.1, -0.5]), (2, [-0.5, 0.1, 0.6])):
    generator, _ = sync_generator(spec=GeneratorSpec(
        name=f"model-{seed}", display_name=f"Model {seed}", description="", source="builtin:tiny-random",
        settings={"steps": 2, "width": 32, "height": 32, "init_seed": seed, "palette": palette}))
    generators.append(generator)
criteria = [("diversity", "Which set is more varied?"), ("quality", "Which set looks better?")]
for slug, access in (("prolific", "prolific"), ("hit", "mturk")):
    campaign = Campaign.objects.create(
        slug=slug, title=f"{slug} study", access=access, population_size=2, votes_per_pair=3,
        participant_quota=2, completion_code="C0DE42", instructions="Judge each set as a whole.",
        prolific_study_id="study-1" if access == "prolific" else "")
    sync_criteria(campaign=campaign, criteria=criteria, report=SeedReport())
    campaign.generators.set(generators)
    for caption in ("a red dot", "a blue dot"):
        campaign.prompts.add(Prompt.objects.get_or_create(caption=caption, category="crowd dot")[0])
    set_campaign_status(campaign=campaign, status="open")
alice = User.objects.create_user("alice", password="alice-pw-1")
grant_researcher_role(user=alice)
"""


class MTurkStandIn(BaseHTTPRequestHandler):
    """MTurk's side: a page that frames the HIT, and the externalSubmit endpoint that receives it."""

    received: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
        body = f'<!doctype html><title>HIT</title><iframe id="hit" src="{src}" width="1200" height="850"></iframe>'
        self._answer(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        if urlsplit(self.path).path == "/mturk/externalSubmit":
            type(self).received.append(form)
        self._answer("<!doctype html><title>Submitted</title><p id='submitted'>Assignment received</p>")

    def _answer(self, body: str) -> None:
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def mturk() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), MTurkStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def site(shared_site, mturk):
    # The shared site's database, served with MTurk's stand-in as the place to hand assignments back.
    with shared_site.serve(MTURK_SUBMIT_ORIGINS=mturk) as base:
        yield base, shared_site.env, shared_site.env


def query(env: dict[str, str], sql: str, *args: object) -> list[tuple]:
    return site_query(env, sql, *args)


def participants(env: dict[str, str], kind: str) -> int:
    """Participants of a kind in the shared site: compared before and after a test's own steps."""
    return query(env, "SELECT count(*) FROM annotation_participant WHERE kind = ?", kind)[0][0]


SOURCES = "JSON.stringify(Array.from(document.querySelectorAll('.grid img')).map(i => i.src))"


def vote_once(target, expect_next: bool = True) -> None:
    """Answer both questions by mouse; wait until the next comparison is on screen (or the page moved on)."""
    target.wait_for_selector("#grid-left img")
    before = target.evaluate(SOURCES)
    target.click("fieldset[data-key=diversity] button[data-choice=left]")
    target.click("fieldset[data-key=quality] button[data-choice=right]")
    if expect_next:
        wait_until(target, f"{SOURCES} !== {json.dumps(before)}")


def test_prolific_participant_votes_to_quota_resumes_in_a_new_browser_and_is_sent_back_with_the_code(browser, site):
    base, database, _ = site
    prolific_before = participants(database, "prolific")
    entry = base + "/c/prolific/?PROLIFIC_PID=pid-1&STUDY_ID=study-1&SESSION_ID=session-1"
    first = browser.new_context()
    page = first.new_page()
    page.goto(entry)
    vote_once(page)
    wait_until(page, "document.getElementById('progress').textContent.startsWith('1 comparison voted; 1 more')")
    first.close()

    # The same Prolific session comes back in a fresh browser: it resumes where it was.
    second = browser.new_context()
    redirects: list[str] = []

    def hand_back(route) -> None:
        # Prolific is out of reach from here: keep the completion page's redirect, and stop there.
        response = route.fetch(max_redirects=0)
        redirects.append(response.headers.get("location", ""))
        route.fulfill(status=200, content_type="text/html", body="<p id='handed-back'>back to Prolific</p>")

    second.route("**/c/prolific/done/", hand_back)
    page = second.new_page()
    page.goto(entry)
    wait_until(page, "document.getElementById('progress').textContent.startsWith('1 comparison voted')")
    vote_once(page, expect_next=False)
    page.wait_for_selector("#handed-back", timeout=15_000)
    assert redirects == ["https://app.prolific.com/submissions/complete?cc=C0DE42"]
    second.close()
    assert participants(database, "prolific") == prolific_before + 1
    voted = query(
        database,
        "SELECT count(*) FROM arena_comparison c JOIN annotation_campaign k ON k.id = c.campaign_id "
        "WHERE k.slug = 'prolific' AND c.status = 'voted'",
    )
    assert voted == [(2,)]


def test_mturk_preview_is_read_only_and_the_accepted_assignment_is_submitted_back_to_mturk(browser, site, mturk):
    base, database, _ = site
    MTurkStandIn.received.clear()
    mturk_before = participants(database, "mturk")
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    hit = f"{base}/c/hit/?hitId=HIT-1&turkSubmitTo={quote(mturk)}"

    # Preview, framed by "MTurk": the task and example images, no buttons, nothing recorded.
    page.goto(f"{mturk}/?src={quote(hit + '&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE')}")
    frame = page.frame_locator("#hit")
    frame.locator("#preview-note").wait_for()
    assert "Judge each set as a whole." in frame.locator("#instructions").inner_text()
    assert frame.locator("#grid-left img").count() == 2
    assert frame.locator("button[data-choice]").count() == 0
    assert participants(database, "mturk") == mturk_before

    # Accepted: the same frame now carries the worker and the assignment.
    page.goto(f"{mturk}/?src={quote(hit + '&assignmentId=ASSIGN-7&workerId=WORKER-7')}")
    target = page.wait_for_selector("#hit").content_frame()
    vote_once(target)
    vote_once(target, expect_next=False)
    # The completion page posts the assignment to {turkSubmitTo}/mturk/externalSubmit inside the frame.
    page.frame_locator("#hit").locator("#submitted").wait_for(timeout=15_000)
    assert MTurkStandIn.received, "MTurk's endpoint received the assignment"
    assert MTurkStandIn.received[0]["assignmentId"] == ["ASSIGN-7"]
    assert MTurkStandIn.received[0]["completion_code"] == ["C0DE42"]
    assert participants(database, "mturk") == mturk_before + 1
    assert errors == [], "the framed pages run under their Content-Security-Policy without errors"
    context.close()


ASK_FOR_A_COMPARISON = """async (slug) => {
  const csrf = (document.cookie.match(/(?:^|;\\s*)csrftoken=([^;]+)/) || [])[1] || "";
  const response = await fetch(`/api/v1/campaigns/${slug}/comparisons/next`, {
    method: "POST", headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: "{}"});
  return [response.status, (await response.json()).error?.code];
}"""


def test_visitors_without_the_crowd_entry_see_how_to_take_part_and_cannot_vote(browser, site, mturk):
    base, database, _ = site
    before = query(
        database, "SELECT (SELECT count(*) FROM annotation_participant), (SELECT count(*) FROM arena_comparison)"
    )
    context = browser.new_context()
    page = context.new_page()
    hit = f"{base}/c/hit/?hitId=HIT-2&turkSubmitTo={quote(mturk)}"
    for url, slug, says in (
        (base + "/c/prolific/", "prolific", "Prolific"),
        (base + "/c/prolific/?PROLIFIC_PID=pid-9", "prolific", "STUDY_ID, SESSION_ID"),
        (base + "/c/hit/", "hit", "Mechanical Turk"),
        (hit + "&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE", "hit", "This is a preview"),
    ):
        page.goto(url)
        assert says in page.inner_text("main"), url
        assert page.locator("button[data-choice]").count() == 0, url
        # Even a hand-made request from that page gets no comparison.
        assert page.evaluate(ASK_FOR_A_COMPARISON, slug) == [403, "crowd_only"], url
    after = query(
        database, "SELECT (SELECT count(*) FROM annotation_participant), (SELECT count(*) FROM arena_comparison)"
    )
    assert after == before
    context.close()


def test_a_prolific_participant_back_in_a_second_session_is_told_they_took_part(browser, site):
    base, database, _ = site
    context = browser.new_context()
    page = context.new_page()
    # pid-1 completed the study on session-1 (the first test); this is another session of the same study.
    page.goto(base + "/c/prolific/?PROLIFIC_PID=pid-1&STUDY_ID=study-1&SESSION_ID=session-2")
    assert "already taken part" in page.inner_text("main")
    assert page.locator("button[data-choice]").count() == 0
    page.goto(base + "/c/prolific/done/")
    assert "C0DE42" not in page.content()
    context.close()


def test_a_researcher_creates_a_campaign_from_a_csv_opens_it_and_watches_a_vote_arrive_without_reload(
    browser, site, tmp_path
):
    base, database, env = site
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(base + "/staff/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url(base + "/staff/")
    # From here on (the admin's login page has no icon link, so the browser asks for /favicon.ico).
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    # Alice owns nothing yet; the crowd campaigns belong to nobody she can see.
    assert "You manage no campaign yet" in page.inner_text("main")
    page.click("text=New campaign")

    page.fill("#id_title", "Dots by researcher")
    page.fill("#id_slug", "dots")
    # This module's two generators (the shared site lists other modules' too).
    for name in ("model-1", "model-2"):
        page.get_by_label(name, exact=True).check()
    page.fill("#id_population_size", "2")
    page.fill("#id_criteria", "quality: Which set looks better?")
    page.fill("#id_votes_per_pair", "2")
    bad = tmp_path / "prompts.csv"
    bad.write_text("caption,category\na green dot,dot\n,dot\n")
    page.set_input_files("#id_prompts_file", str(bad))
    page.click("button[type=submit]")
    assert "prompts.csv line 3: 'caption' is empty" in page.inner_text("#field-prompts_file")
    assert query(database, "SELECT count(*) FROM annotation_campaign WHERE slug = 'dots'") == [(0,)]

    good = tmp_path / "good.csv"
    good.write_text("caption,category\na green dot,dot\na yellow dot,dot\n")
    page.set_input_files("#id_prompts_file", str(good))
    page.click("button[type=submit]")
    page.wait_for_url(base + "/staff/campaigns/dots/")
    page.click("button[data-status=open]")
    assert "Campaign 'dots' is now open." in page.inner_text(".notice.success")
    assert page.text_content("#status") == "open"
    assert page.inner_text("#stat-voted") == "0"
    needed = int(page.inner_text("#stat-needed"))
    assert needed == 2 * 1 * 2  # prompts x pairs x votes per pair

    manage(env, "run_generation_worker", "--once", "--campaign", "dots")
    page.evaluate("window.__sameDocument = true")
    voter = browser.new_context().new_page()
    voter.goto(base + "/c/dots/")
    voter.wait_for_selector("#grid-left img")
    voter.click("fieldset[data-key=quality] button[data-choice=left]")
    voter.wait_for_selector("#reveal:not([hidden])")
    wait_until(page, "document.getElementById('stat-voted').textContent === '1'", timeout_s=15)
    assert page.inner_text("#stat-needed") == str(needed - 1)
    assert page.inner_text("#stat-active") == "1"
    assert page.evaluate("window.__sameDocument") is True, "the numbers changed without a reload"
    assert page.locator("#live.on").count() == 1
    assert errors == []
    voter.context.close()
    context.close()
