"""Staff and worker API routes under /api/v1/."""

from django.urls import path

from generation import api

urlpatterns = [
    path("generators/", api.GeneratorListApi.as_view(), name="api-generator-list"),
    path("queues/", api.QueueListApi.as_view(), name="api-queue-list"),
    path("workers/", api.WorkerListApi.as_view(), name="api-worker-list"),
]
