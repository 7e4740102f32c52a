"""A campaign that asks its questionnaire first issues no comparison, and takes no vote, before it is answered.

Before this gate the vote page sent a participant to the questions first, but the JSON API did not:
`comparisons/next` issued comparisons to anyone who had accepted the consent, so a script (or a participant
who called the API) could vote without ever answering, and every board per group lost them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from annotation.models import Answer, ConsentDecision, Participant, Question, QuestionnaireResponse
from annotation.questionnaire import QuestionnaireRequired, QuestionSpec, require_questionnaire, save_question
from annotation.selectors import get_live_campaign
from arena.models import Comparison, Vote

pytestmark = pytest.mark.django_db

CONSENT = "You agree that your votes and answers are used for research."
NOW = datetime(2026, 12, 7, tzinfo=UTC)
VOTE = {"votes": [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]}


def next_comparison(client: Client):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")


def vote(client: Client, token: str, **extra: object):  # type: ignore[no-untyped-def]
    body = {**VOTE, "dwell_ms": 1500, **extra}
    return client.post(f"/api/v1/comparisons/{token}/votes", body, content_type="application/json")


def answer(client: Client, answers: dict):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/campaigns/study/questionnaire", {"answers": answers}, content_type="application/json")


def ask(campaign, key: str = "age", **changes: object) -> Question:  # type: ignore[no-untyped-def]
    spec = {"key": key, "text": "Your age?", "kind": "number", "min_value": 18, "max_value": 99, "sensitive": True}
    return save_question(campaign=campaign, spec=QuestionSpec(**{**spec, **changes}))  # type: ignore[arg-type]


def code(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["error"]["code"]


def test_comparisons_next_answers_403_questionnaire_required_until_it_is_answered(arena_campaign):
    # Given a campaign that asks "age" before the first comparison (the default timing)
    campaign = arena_campaign()
    ask(campaign)
    client = Client()
    # When a new session asks for a comparison through the API, it is refused, naming what to do, and nothing is
    # issued
    refused = next_comparison(client)
    assert refused.status_code == 403
    assert code(refused) == "questionnaire_required"
    assert "age" in refused.json()["error"]["message"]
    assert "/api/v1/campaigns/study/questionnaire" in refused.json()["error"]["message"]
    assert Comparison.objects.count() == 0
    # A wrong answer is refused and changes nothing: still no comparison
    assert code(answer(client, {"age": 12})) == "invalid_answers"
    assert code(next_comparison(client)) == "questionnaire_required"
    # Then, answered through the API, the comparisons come
    assert answer(client, {"age": 40}).status_code == 200
    issued = next_comparison(client)
    assert issued.status_code == 200, issued.content
    assert Comparison.objects.count() == 1


def test_a_comparison_held_from_before_the_questionnaire_takes_no_vote_until_it_is_answered(arena_campaign):
    # Given a participant who holds a comparison, issued before the researcher added a question asked first
    campaign = arena_campaign()
    client = Client()
    token = next_comparison(client).json()["token"]
    ask(campaign)
    # When they vote on it (with or without asking for the next one), the vote is refused and nothing is stored
    for extra in ({}, {"next": {}}):
        refused = vote(client, token, **extra)
        assert refused.status_code == 403, refused.content
        assert code(refused) == "questionnaire_required"
    assert Vote.objects.count() == 0
    assert Comparison.objects.get(token=token).status == Comparison.Status.ISSUED
    # Then, once answered, the same vote is taken, and the next comparison comes with it
    assert answer(client, {"age": "prefer not to say"}).status_code == 200
    taken = vote(client, token, next={})
    assert taken.status_code == 200, taken.content
    assert taken.json()["next"] is not None
    assert Vote.objects.count() == 2


def test_the_questionnaire_is_asked_once_and_answers_from_an_import_count(arena_campaign):
    # Given two participants of a campaign asking "age" first: one answers here, one has it from Prolific's export
    campaign = arena_campaign(per_queue=3)
    ask(campaign)
    submitted, imported = Client(), Client()
    assert answer(submitted, {"age": 30}).status_code == 200
    token = next_comparison(submitted).json()["token"]
    assert code(next_comparison(imported)) == "questionnaire_required"
    person = Participant.objects.exclude(pk=Comparison.objects.get().participant_id).get()
    response = QuestionnaireResponse.objects.create(campaign=campaign, participant=person)
    Answer.objects.create(
        response=response, question=Question.objects.get(key="age"), value=44, source="prolific", answered_at=NOW
    )
    assert next_comparison(imported).status_code == 200
    # When the researcher adds a question asked first
    ask(campaign, key="country", text="Your country?", kind="text", min_value=None, max_value=None, sensitive=False)
    # Then who submitted here is not asked again (asked once), and their vote brings the next comparison
    assert vote(submitted, token, next={}).json()["next"] is not None
    # But the imported answers did not cover it: that participant is asked before any further comparison
    assert code(next_comparison(imported)) == "questionnaire_required"


def test_a_campaign_that_asks_after_the_comparisons_issues_them_at_once(arena_campaign):
    campaign = arena_campaign()
    campaign.questionnaire_timing = "after"
    campaign.save()
    ask(campaign)
    assert next_comparison(Client()).status_code == 200


def test_answers_are_refused_before_the_consent_and_the_consent_comes_first(arena_campaign):
    # Given a campaign that asks consent and a questionnaire before the first comparison
    campaign = arena_campaign()
    campaign.consent_text = CONSENT
    campaign.save()
    ask(campaign)
    client = Client()
    # The consent is asked first; answers (personal data) are refused before it, and none is stored
    assert code(next_comparison(client)) == "consent_required"
    refused = answer(client, {"age": 30})
    assert refused.status_code == 403
    assert code(refused) == "consent_required"
    assert not Answer.objects.exists()
    assert not QuestionnaireResponse.objects.exists()
    accepted = client.post(
        "/api/v1/campaigns/study/consent", {"accept": True, "version": 1}, content_type="application/json"
    )
    assert accepted.status_code == 200
    assert code(next_comparison(client)) == "questionnaire_required"
    assert answer(client, {"age": 30}).status_code == 200
    assert next_comparison(client).status_code == 200
    assert ConsentDecision.objects.count() == 1


def test_the_questionnaire_gate_costs_no_query_without_questions_and_none_once_answered(
    arena_campaign, django_assert_num_queries
):
    campaign = arena_campaign()
    participant = Participant.objects.create()
    session = Client().session
    live = get_live_campaign(slug="study")
    with django_assert_num_queries(0):
        require_questionnaire(campaign=live, participant=participant, session=session)
    # A question asked first: the copy is read again, and the participant has it pending
    ask(campaign)
    live = get_live_campaign(slug="study")
    with pytest.raises(QuestionnaireRequired):
        require_questionnaire(campaign=live, participant=participant, session=session)
    QuestionnaireResponse.objects.create(campaign=campaign, participant=participant, asked_at=campaign.created_at)
    require_questionnaire(campaign=live, participant=participant, session=session)
    # Answered: the session keeps it, the next comparisons ask nothing more
    with django_assert_num_queries(0):
        require_questionnaire(campaign=live, participant=participant, session=session)
    # Another participant in the same session is asked again
    with pytest.raises(QuestionnaireRequired):
        require_questionnaire(campaign=live, participant=Participant.objects.create(), session=session)
