"""Parsing the crowd platforms' own records of a study: Prolific's submissions export, MTurk's batch results."""

from __future__ import annotations

import pytest

from annotation import reconciliation as r
from annotation.models import PlatformStatus

# Prolific's submissions export as the researcher downloads it (Submissions > Export), columns in its order.
PROLIFIC_CSV = (
    "Submission id,Participant id,Status,Custom study tncs accepted at,Started at,Completed at,Reviewed at,"
    "Archived at,Time taken,Completion code,Total approvals,Age,Sex,Nationality,Country of residence\r\n"
    "65a1f0c2d3e4f5a6b7c8d9e0,5f1a2b3c4d5e6f7a8b9c0d1e,APPROVED,,2024-01-12T10:00:01.000Z,"
    "2024-01-12T10:09:40.000Z,2024-01-13T08:00:00.000Z,,579,C0DE42,311,34,Female,United Kingdom,United Kingdom\r\n"
    "65a1f0c2d3e4f5a6b7c8d9e1,5f1a2b3c4d5e6f7a8b9c0d1f,AWAITING REVIEW,,2024-01-12T10:01:00.000Z,"
    "2024-01-12T10:11:00.000Z,,,600,C0DE42,120,29,Male,Canada,Canada\r\n"
    "65a1f0c2d3e4f5a6b7c8d9e2,5f1a2b3c4d5e6f7a8b9c0d20,RETURNED,,2024-01-12T10:02:00.000Z,,,,,,55,41,Male,Spain,Spain\r\n"
    "65a1f0c2d3e4f5a6b7c8d9e3,5f1a2b3c4d5e6f7a8b9c0d21,TIMED-OUT,,2024-01-12T10:03:00.000Z,,,,,,8,22,Female,Italy,"
    "Italy\r\n"
    "65a1f0c2d3e4f5a6b7c8d9e4,5f1a2b3c4d5e6f7a8b9c0d22,REJECTED,,2024-01-12T10:04:00.000Z,"
    "2024-01-12T10:04:30.000Z,2024-01-13T08:00:00.000Z,,30,NOCODE,2,19,Male,France,France\r\n"
)

# MTurk's batch results (Manage > Results > Download CSV): HIT columns, then assignment columns, inputs, answers.
MTURK_CSV = (
    '"HITId","HITTypeId","Title","Description","Keywords","Reward","CreationTime","MaxAssignments",'
    '"RequesterAnnotation","AssignmentDurationInSeconds","AutoApprovalDelayInSeconds","Expiration",'
    '"NumberOfSimilarHITs","LifetimeInSeconds","AssignmentId","WorkerId","AssignmentStatus","AcceptTime",'
    '"SubmitTime","AutoApprovalTime","ApprovalTime","RejectionTime","RequesterFeedback","WorkTimeInSeconds",'
    '"LifetimeApprovalRate","Last30DaysApprovalRate","Last7DaysApprovalRate","Answer.surveycode","Approve","Reject"\n'
    '"3XYZHIT0001","3TYPE","Compare image sets","Pick the better set","images","$1.00",'
    '"Mon Jan 15 10:00:00 PST 2024","3","BatchId:5000001;","3600","259200","Mon Jan 22 10:00:00 PST 2024","",'
    '"604800","3ASSIGN0001","A1WORKERAAAA","Approved","Mon Jan 15 10:05:00 PST 2024","Mon Jan 15 10:15:00 PST 2024",'
    '"Thu Jan 18 10:15:00 PST 2024","Tue Jan 16 09:00:00 PST 2024","","","600","100% (12/12)","100% (12/12)",'
    '"100% (12/12)","C0DE42","",""\n'
    '"3XYZHIT0001","3TYPE","Compare image sets","Pick the better set","images","$1.00",'
    '"Mon Jan 15 10:00:00 PST 2024","3","BatchId:5000001;","3600","259200","Mon Jan 22 10:00:00 PST 2024","",'
    '"604800","3ASSIGN0002","A2WORKERBBBB","Submitted","Mon Jan 15 10:06:00 PST 2024","Mon Jan 15 10:20:00 PST 2024",'
    '"Thu Jan 18 10:20:00 PST 2024","","","","840","0% (0/0)","0% (0/0)","0% (0/0)","C0DE42","",""\n'
    '"3XYZHIT0001","3TYPE","Compare image sets","Pick the better set","images","$1.00",'
    '"Mon Jan 15 10:00:00 PST 2024","3","BatchId:5000001;","3600","259200","Mon Jan 22 10:00:00 PST 2024","",'
    '"604800","3ASSIGN0003","A3WORKERCCCC","Rejected","Mon Jan 15 10:07:00 PST 2024","Mon Jan 15 10:08:00 PST 2024",'
    '"Thu Jan 18 10:08:00 PST 2024","","Tue Jan 16 09:00:00 PST 2024","too fast","60","90% (9/10)","90% (9/10)",'
    '"90% (9/10)","","",""\n'
)


def test_prolific_s_submissions_export_is_read_with_each_status():
    record = r.parse_record(PROLIFIC_CSV.encode())
    assert record.platform == r.PROLIFIC
    assert [(row.row, row.worker, row.assignment, row.status) for row in record.rows] == [
        (2, "5f1a2b3c4d5e6f7a8b9c0d1e", "65a1f0c2d3e4f5a6b7c8d9e0", "approved"),
        (3, "5f1a2b3c4d5e6f7a8b9c0d1f", "65a1f0c2d3e4f5a6b7c8d9e1", "awaiting_review"),
        (4, "5f1a2b3c4d5e6f7a8b9c0d20", "65a1f0c2d3e4f5a6b7c8d9e2", "returned"),
        (5, "5f1a2b3c4d5e6f7a8b9c0d21", "65a1f0c2d3e4f5a6b7c8d9e3", "returned"),
        (6, "5f1a2b3c4d5e6f7a8b9c0d22", "65a1f0c2d3e4f5a6b7c8d9e4", "rejected"),
    ]


def test_mturk_s_batch_results_are_read_with_each_assignment_status():
    record = r.parse_record(MTURK_CSV.encode())
    assert record.platform == r.MTURK
    assert [(row.worker, row.assignment, row.status) for row in record.rows] == [
        ("A1WORKERAAAA", "3ASSIGN0001", "approved"),
        ("A2WORKERBBBB", "3ASSIGN0002", "awaiting_review"),
        ("A3WORKERCCCC", "3ASSIGN0003", "rejected"),
    ]


def test_a_byte_order_mark_older_column_names_and_blank_lines_are_read():
    older = "\ufeffsession_id,participant_id,status\nS1,P1,approved\n\n,,\nS2,P2,awaiting_review\n"
    record = r.parse_record(older.encode())
    assert [(row.row, row.worker, row.status) for row in record.rows] == [
        (2, "P1", "approved"),
        (5, "P2", "awaiting_review"),
    ]


def test_a_bad_row_is_named_by_row_and_column():
    bad_status = PROLIFIC_CSV.replace("TIMED-OUT", "ON HOLIDAY")
    with pytest.raises(r.RecordError, match=r"row 5, column 'Status': unknown status 'ON HOLIDAY'"):
        r.parse_record(bad_status.encode())
    missing_worker = MTURK_CSV.replace('"A2WORKERBBBB"', '""')
    with pytest.raises(r.RecordError, match=r"row 3, column 'WorkerId': empty") as refused:
        r.parse_record(missing_worker.encode())
    assert (refused.value.row, refused.value.column) == (3, "WorkerId")


def test_a_file_of_neither_platform_or_not_text_is_refused_whole():
    with pytest.raises(r.RecordError, match="row 1: the header has neither Prolific's .* nor MTurk's"):
        r.parse_record(b"name,email\nx,y\n")
    with pytest.raises(r.RecordError, match="not UTF-8"):
        r.parse_record(b"\xff\xfe\x00P\x00a")
    with pytest.raises(r.RecordError, match="empty"):
        r.parse_record(b"")


def test_the_parser_s_statuses_are_the_model_s():
    parsed = {*r.PROLIFIC_STATUSES.values(), *r.MTURK_STATUSES.values(), r.UNKNOWN}
    assert parsed <= set(PlatformStatus.values)
    assert set(PlatformStatus.values) - parsed == {""}, "every stored status but 'not reconciled' comes from a file"
