"""The questionnaire: each kind of question and its checks, asked once, versions, and Prolific's export imported."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import PREFER_NOT_TO_SAY, Answer, Participant, Question
from annotation.questionnaire import (
    AnswerError,
    QuestionnaireInvalid,
    QuestionRefused,
    QuestionSpec,
    clean_answer,
    get_pending_questions,
    import_prolific_demographics,
    retire_question,
    save_question,
    submit_questionnaire,
)
from annotation.selectors import get_participant_answers
from annotation.services import hash_external_id
from arena.models import Comparison
from core.errors import ApplicationError, Conflict
from tests.factories import CampaignFactory, ComparisonFactory

GENDER = Question(key="gender", text="Gender?", kind="single", choices=["woman", "man", "non-binary"], sensitive=True)
LANGUAGES = Question(key="languages", text="Languages?", kind="multiple", choices=["en", "fr", "de"], required=False)
AGE = Question(key="age", text="Age?", kind="number", min_value=18, max_value=99, sensitive=True)
JOB = Question(key="job", text="Job?", kind="text", required=False)


@pytest.mark.parametrize(
    ("question", "raw", "stored"),
    [
        (GENDER, "woman", "woman"),
        (GENDER, " man ", "man"),
        (GENDER, PREFER_NOT_TO_SAY, PREFER_NOT_TO_SAY),
        (LANGUAGES, ["fr", "en"], ["en", "fr"]),
        (LANGUAGES, "de", ["de"]),
        (LANGUAGES, [], None),
        (AGE, 34, 34),
        (AGE, "34", 34),
        (AGE, "18.5", 18.5),
        (AGE, PREFER_NOT_TO_SAY, PREFER_NOT_TO_SAY),
        (JOB, "  nurse   in a  clinic ", "nurse in a clinic"),
        (JOB, "", None),
    ],
)
def test_each_kind_of_answer_is_stored_as_checked(question, raw, stored):
    assert clean_answer(question, raw) == stored


@pytest.mark.parametrize(
    ("question", "raw", "message"),
    [
        (GENDER, None, 'this question needs an answer (or "prefer not to say")'),
        (GENDER, "robot", "'robot' is not one of the options (woman, man, non-binary, prefer not to say)"),
        (GENDER, ["woman"], "expected one of the options, as text"),
        (LANGUAGES, ["en", "en"], "an option is chosen twice"),
        (LANGUAGES, ["en", "klingon"], "'klingon' is not one of the options (en, fr, de)"),
        (LANGUAGES, {"en": 1}, "expected a list of options"),
        (LANGUAGES, [PREFER_NOT_TO_SAY], "'prefer not to say' is not one of the options (en, fr, de)"),
        (AGE, 17, "17 is outside the range 18 to 99"),
        (AGE, "100", "100 is outside the range 18 to 99"),
        (AGE, "thirty", "'thirty' is not a number"),
        (AGE, True, "expected a number"),
        (AGE, "nan", "expected a finite number"),
        (JOB, "x" * 201, "at most 200 characters, not 201"),
        (JOB, 12, "expected text"),
    ],
)
def test_an_answer_that_does_not_fit_its_question_is_refused_with_a_clear_message(question, raw, message):
    with pytest.raises(AnswerError) as refused:
        clean_answer(question, raw)
    assert str(refused.value) == message


def test_a_sensitive_several_choice_question_offers_prefer_not_to_say_alone():
    question = Question(key="origin", text="Origin?", kind="multiple", choices=["a", "b"], sensitive=True)
    assert question.offered_choices == ["a", "b", PREFER_NOT_TO_SAY]
    assert clean_answer(question, [PREFER_NOT_TO_SAY]) == [PREFER_NOT_TO_SAY]
    with pytest.raises(AnswerError, match="goes alone"):
        clean_answer(question, ["a", PREFER_NOT_TO_SAY])


@pytest.fixture
def campaign(db):  # type: ignore[no-untyped-def]
    campaign = CampaignFactory(slug="study")
    for position, question in enumerate((GENDER, LANGUAGES, AGE, JOB)):
        save_question(
            campaign=campaign,
            spec=QuestionSpec(
                key=question.key,
                text=question.text,
                kind=question.kind,
                choices=tuple(question.choices),
                min_value=question.min_value,
                max_value=question.max_value,
                required=question.required,
                sensitive=question.sensitive,
                position=position,
                prolific_column={"gender": "Sex", "age": "Age"}.get(question.key, ""),
            ),
        )
    return campaign


def test_answers_are_stored_all_or_none_and_asked_once(campaign):
    person = Participant.objects.create()
    # Given one bad answer among good ones, nothing is stored and every problem is named
    with pytest.raises(QuestionnaireInvalid) as refused:
        submit_questionnaire(campaign=campaign, participant=person, answers={"gender": "woman", "age": 12, "x": 1})
    assert refused.value.errors == {
        "x": "no such question is asked of you here",
        "age": "12 is outside the range 18 to 99",
    }
    assert Answer.objects.count() == 0
    # When the answers fit, they are stored and the participant is asked nothing more
    result = submit_questionnaire(campaign=campaign, participant=person, answers={"gender": "woman", "age": "41"})
    assert result.stored == {"gender": "woman", "age": 41}
    assert get_participant_answers(campaign) == {person.pk: {"gender": "woman", "age": 41}}
    assert get_pending_questions(campaign=campaign, participant=person) == []
    with pytest.raises(Conflict):
        submit_questionnaire(campaign=campaign, participant=person, answers={"gender": "man", "age": 41})


def test_editing_an_answered_question_makes_a_new_version_and_old_answers_keep_theirs(campaign):
    person = Participant.objects.create()
    submit_questionnaire(campaign=campaign, participant=person, answers={"gender": "man", "age": 30})
    first = Question.objects.get(campaign=campaign, key="gender")
    edited = save_question(
        campaign=campaign,
        spec=QuestionSpec(key="gender", text="Your gender?", kind="single", choices=("woman", "man"), sensitive=True),
    )
    assert (edited.version, edited.is_current) == (2, True)
    first.refresh_from_db()
    assert (first.version, first.is_current, first.text) == (1, False, "Gender?")
    assert Answer.objects.get(question__key="gender").question_id == first.pk
    # An unanswered question is edited in place
    job = save_question(campaign=campaign, spec=QuestionSpec(key="job", text="Your job?", kind="text", required=False))
    assert (job.version, Question.objects.filter(key="job").count()) == (1, 1)
    # Retiring an answered question keeps it for its answers; an unanswered one is deleted
    retire_question(campaign=campaign, key="age")
    retire_question(campaign=campaign, key="job")
    assert set(Question.objects.filter(is_current=True).values_list("key", flat=True)) == {"gender", "languages"}
    assert Question.objects.filter(key="age").exists()
    assert not Question.objects.filter(key="job").exists()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (QuestionSpec(key="a b", text="?", kind="text"), "key"),
        (QuestionSpec(key="a", text=" ", kind="text"), "text"),
        (QuestionSpec(key="a", text="?", kind="slider"), "kind"),
        (QuestionSpec(key="a", text="?", kind="single", choices=("one",)), "choices"),
        (QuestionSpec(key="a", text="?", kind="single", choices=("one", "one")), "choices"),
        (QuestionSpec(key="a", text="?", kind="number", min_value=5, max_value=1), "max_value"),
        (QuestionSpec(key="a", text="?", kind="text", min_value=1), "min_value"),
    ],
)
def test_a_question_that_cannot_be_asked_is_refused_naming_the_field(db, spec, field):
    campaign = CampaignFactory()
    with pytest.raises(QuestionRefused) as refused:
        save_question(campaign=campaign, spec=spec)
    assert field in refused.value.errors
    assert not Question.objects.exists()


PID_A, PID_B, PID_GONE = "5f1a2b3c4d5e6f7a8b9c0d1e", "5f1a2b3c4d5e6f7a8b9c0d1f", "5f1a2b3c4d5e6f7a8b9c0dff"
EXPORT = (
    "Submission id,Participant id,Status,Age,Sex,Ethnicity simplified\r\n"
    f"s1,{PID_A},APPROVED,34,Female,White\r\n"
    f"s2,{PID_B},APPROVED,DATA_EXPIRED,Male,Asian\r\n"
    f"s3,{PID_GONE},RETURNED,50,Male,Black\r\n"
)


def prolific_participant(campaign, pid: str) -> Participant:  # type: ignore[no-untyped-def]
    participant = Participant.objects.create(kind="prolific", external_id_hash=hash_external_id("prolific", pid))
    ComparisonFactory(campaign=campaign, participant=participant)
    return participant


def test_prolific_s_demographic_export_fills_the_same_questions_matched_by_hashed_id(campaign):
    gender = Question.objects.get(key="gender")
    gender.choices = ["Female", "Male"]
    gender.save()
    a, b = prolific_participant(campaign, PID_A), prolific_participant(campaign, PID_B)
    result = import_prolific_demographics(campaign=campaign, data=EXPORT.encode())
    assert (result.rows, result.participants, result.answers, result.not_ours) == (3, 2, 3, 1)
    assert result.skipped == {"Age": 1}
    assert get_participant_answers(campaign) == {a.pk: {"gender": "Female", "age": 34}, b.pk: {"gender": "Male"}}
    # The raw Prolific ids are stored nowhere
    assert not any(PID_A in str(v) for v in Answer.objects.values_list("value", flat=True))
    # Imported questions are not asked again; the others still are
    assert [q.key for q in get_pending_questions(campaign=campaign, participant=a)] == ["languages", "job"]
    assert Comparison.objects.count() == 2


def test_a_prolific_export_with_a_value_no_question_takes_is_refused_whole(campaign):
    prolific_participant(campaign, PID_A)
    prolific_participant(campaign, PID_B)  # Sex "Female" is not among woman/man/non-binary
    with pytest.raises(ApplicationError) as refused:
        import_prolific_demographics(campaign=campaign, data=EXPORT.encode())
    assert "row 2, column 'Sex'" in refused.value.message
    assert Answer.objects.count() == 0
    with pytest.raises(ApplicationError, match="no column 'Age'"):
        import_prolific_demographics(campaign=campaign, data=b"Participant id,Sex\r\nx,Female\r\n")


def test_the_questionnaire_api_says_what_is_wrong_and_stores_what_fits(campaign):
    client = Client()
    shown = client.get("/api/v1/campaigns/study/questionnaire").json()
    assert [q["key"] for q in shown["questions"]] == ["gender", "languages", "age", "job"]
    assert shown["questions"][0]["choices"][-1] == PREFER_NOT_TO_SAY
    bad = client.post(
        "/api/v1/campaigns/study/questionnaire", {"answers": {"gender": "x"}}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["age"].startswith("this question needs an answer")
    good = client.post(
        "/api/v1/campaigns/study/questionnaire",
        {"answers": {"gender": PREFER_NOT_TO_SAY, "age": 27, "languages": ["de"]}},
        content_type="application/json",
    )
    assert good.status_code == 200
    assert good.json()["stored"] == {"gender": PREFER_NOT_TO_SAY, "languages": ["de"], "age": 27}
