"""Fine-tuning generators on PopArena's own preference exports (PopAlign, Diffusion-DPO, Diffusion-KTO)."""

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"
