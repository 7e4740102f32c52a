"""Campaigns, criteria, participants and (later) crowd sessions and quality control."""

from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
