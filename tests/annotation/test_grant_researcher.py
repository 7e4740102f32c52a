"""`grant_researcher`: the command that makes an account a researcher."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from annotation.permissions import can_manage_campaign, is_researcher
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def test_an_existing_account_becomes_a_researcher_of_its_own_campaigns_only():
    alice = User.objects.create_user("alice", password="pw")
    call_command("grant_researcher", "alice", stdout=StringIO(), stderr=StringIO())
    alice = User.objects.get(pk=alice.pk)
    assert is_researcher(alice)
    assert alice.is_staff
    assert can_manage_campaign(alice, CampaignFactory(owner=alice))
    assert not can_manage_campaign(alice, CampaignFactory())


def test_create_makes_the_account_and_prints_a_password_that_logs_in(client):
    out = StringIO()
    call_command("grant_researcher", "bob", "--create", "--email", "bob@lab.example", stdout=out, stderr=StringIO())
    password = out.getvalue().strip()
    assert client.login(username="bob", password=password)
    assert is_researcher(User.objects.get(username="bob"))


def test_mistakes_are_named_and_change_nothing():
    with pytest.raises(CommandError, match="no user named 'carol'; add --create"):
        call_command("grant_researcher", "carol")
    User.objects.create_user("dave", password="pw")
    with pytest.raises(CommandError, match="a user named 'dave' exists already"):
        call_command("grant_researcher", "dave", "--create")
    User.objects.create_superuser("root", password="pw")
    with pytest.raises(CommandError, match="'root' is a superuser"):
        call_command("grant_researcher", "root")
    assert not User.objects.filter(username="carol").exists()
    assert not User.objects.filter(groups__name="researcher").exists()
