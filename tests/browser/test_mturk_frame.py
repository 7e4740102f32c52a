"""MTurk inside MTurk's frame: the HIT framed by another site over HTTPS, as a worker's browser shows it.

MTurk shows an ExternalQuestion in an iframe on its own site, so the vote page and every call it makes
are cross-site. A real browser then sends no `SameSite=Lax` cookie: the worker was admitted on arrival,
but the page's API calls came without their session and no vote could be cast. Here "framer.test"
plays MTurk (the page with the iframe and the externalSubmit endpoint) and "poparena.test" is the
site, both resolved to this machine by Chromium and served over HTTPS with one self-signed
certificate (`Secure` cookies need HTTPS, and a second hostname is no `localhost`).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, wait_until
from tests.servers import free_port, site_query

pytestmark = pytest.mark.browser

SITE, FRAMER, ELSEWHERE = "poparena.test", "framer.test", "elsewhere.test"

# An MTurk campaign with a quota of two comparisons, opened through the service (prompts of its own).
SITE_SEED = """
from annotation.models import Campaign
from annotation.services import SeedReport, set_campaign_status, sync_criteria
from generation.models import Prompt
from generation.services import GeneratorSpec, sync_generator

generators = []
for seed, palette in ((1, [0.6, 0.1, -0.5]), (2, [-0.5, 0.1, 0.6])):
    generator, _ = sync_generator(spec=GeneratorSpec(
        name=f"model-{seed}", display_name=f"Model {seed}", description="", source="builtin:tiny-random",
        settings={"steps": 2, "width": 32, "height": 32, "init_seed": seed, "palette": palette}))
    generators.append(generator)
campaign = Campaign.objects.create(
    slug="framed", title="A HIT", access="mturk", population_size=2, votes_per_pair=3, participant_quota=2,
    completion_code="C0DE42")
sync_criteria(campaign=campaign, criteria=[("quality", "Which set looks better?")], report=SeedReport())
campaign.generators.set(generators)
for caption in ("a red dot", "a blue dot"):
    campaign.prompts.add(Prompt.objects.get_or_create(caption=caption, category="framed dot")[0])
set_campaign_status(campaign=campaign, status="open")
"""


class MTurkStandIn(BaseHTTPRequestHandler):
    """MTurk's side: the page that frames the HIT, and the externalSubmit endpoint that receives it."""

    received: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
        self._answer(
            f'<!doctype html><title>HIT</title><iframe id="hit" src="{src}" width="1200" height="850"></iframe>'
        )

    def do_POST(self) -> None:  # noqa: N802
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
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
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """One self-signed certificate for both hostnames: (certificate file, key file)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={SITE}",
         "-addext", f"subjectAltName=DNS:{SITE},DNS:{FRAMER},DNS:{ELSEWHERE}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def framer(certificate) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), MTurkStandIn)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://{FRAMER}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def site(shared_site, certificate, framer) -> Iterator[tuple[str, dict[str, str]]]:
    """The shared site's database served over HTTPS as MTurk's frame needs it."""
    settings = {
        "ALLOWED_HOSTS": f"{SITE},127.0.0.1",
        "MTURK_SUBMIT_ORIGINS": framer,
        "MTURK_FRAME_ANCESTORS": framer,
        "CROSS_SITE_FRAME_COOKIES": "true",
    }
    with shared_site.serve("uvicorn", tls=certificate, **settings) as base:
        yield base.replace("127.0.0.1", SITE), shared_site.env


@pytest.fixture(scope="module")
def cross_site_browser(playwright):
    """Chromium that resolves both hostnames to this machine and takes the test's own certificate."""
    rules = ", ".join(f"MAP {host} 127.0.0.1" for host in (SITE, FRAMER, ELSEWHERE))
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules={rules}", "--ignore-certificate-errors"]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
    yield browser
    browser.close()


def query(env: dict[str, str], sql: str) -> list[tuple]:
    return site_query(env, sql)


# The framed campaign's votes (the shared site holds other modules' too).
VOTES = (
    "SELECT count(*) FROM arena_vote v JOIN arena_comparison c ON c.id = v.comparison_id "
    "WHERE c.campaign_id = (SELECT id FROM annotation_campaign WHERE slug = 'framed')"
)
MTURK_PARTICIPANTS = "SELECT count(*) FROM annotation_participant WHERE kind = 'mturk'"


SOURCES = "JSON.stringify(Array.from(document.querySelectorAll('.grid img')).map(i => i.src))"


def test_an_mturk_worker_votes_inside_the_frame_of_another_site_and_hands_the_assignment_back(
    cross_site_browser, site, framer
):
    base, database = site
    MTurkStandIn.received.clear()
    workers_before = query(database, MTURK_PARTICIPANTS)[0][0]
    context = cross_site_browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    # Given a worker who accepted the HIT: MTurk frames the task with the worker and the assignment
    hit = f"{base}/c/framed/?workerId=WORKER-1&assignmentId=ASSIGN-1&hitId=HIT-1&turkSubmitTo={quote(framer)}"
    page.goto(f"{framer}/?src={quote(hit)}")
    frame = page.wait_for_selector("#hit").content_frame()
    assert frame is not None
    frame.wait_for_selector("#grid-left img")

    # When they answer, in the frame: the vote lands and the next comparison comes
    before = frame.evaluate(SOURCES)
    frame.click("fieldset[data-key=quality] button[data-choice=left]")
    wait_until(frame, f"{SOURCES} !== {json.dumps(before)}")
    wait_until(frame, "document.getElementById('progress').textContent.startsWith('1 comparison voted')")
    assert query(database, VOTES) == [(1,)]

    # And at the quota the page hands the assignment back to MTurk, inside the frame
    frame.click("fieldset[data-key=quality] button[data-choice=right]")
    page.frame_locator("#hit").locator("#submitted").wait_for(timeout=15_000)
    assert [form["assignmentId"] for form in MTurkStandIn.received] == [["ASSIGN-1"]]
    assert query(database, VOTES) == [(2,)]
    assert query(database, MTURK_PARTICIPANTS)[0][0] == workers_before + 1
    assert errors == [], "the framed pages run under their Content-Security-Policy without errors"

    # The frame's cookies are kept for the framing site only: PopArena opened directly is a stranger
    page.goto(f"{base}/c/framed/")
    assert "Mechanical Turk" in page.inner_text("main")
    assert page.locator("button[data-choice]").count() == 0
    context.close()


def test_a_site_not_configured_as_a_frame_ancestor_cannot_show_the_hit(cross_site_browser, site, framer):
    base, _ = site
    context = cross_site_browser.new_context()
    page = context.new_page()
    hit = f"{base}/c/framed/?workerId=WORKER-2&assignmentId=ASSIGN-2&hitId=HIT-1&turkSubmitTo={quote(framer)}"
    # The same framing page, served from a site that MTURK_FRAME_ANCESTORS does not list
    page.goto(f"{framer.replace(FRAMER, ELSEWHERE)}/?src={quote(hit)}")
    frame = page.wait_for_selector("#hit").content_frame()
    assert frame is not None
    assert frame.query_selector("#criteria") is None, "the browser refused to show the HIT in that frame"
    # While the configured framer shows it
    page.goto(f"{framer}/?src={quote(hit)}")
    frame = page.wait_for_selector("#hit").content_frame()
    assert frame is not None
    frame.wait_for_selector("#criteria")
    context.close()
