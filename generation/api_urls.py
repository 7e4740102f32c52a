"""Staff and worker API routes under /api/v1/."""

from django.urls import path

from generation import api, worker_api

urlpatterns = [
    path("generators/", api.GeneratorListApi.as_view(), name="api-generator-list"),
    path("queues/", api.QueueListApi.as_view(), name="api-queue-list"),
    path("workers/", api.WorkerListApi.as_view(), name="api-worker-list"),
    path("generation/claims", worker_api.ClaimApi.as_view(), name="api-generation-claim"),
    path("generation/leases", worker_api.LeaseRenewApi.as_view(), name="api-generation-leases"),
    path("generation/releases", worker_api.ReleaseApi.as_view(), name="api-generation-releases"),
    path(
        "generation/populations/<int:population_id>/images",
        worker_api.UploadApi.as_view(),
        name="api-generation-upload",
    ),
    path(
        "generation/populations/<int:population_id>/failures",
        worker_api.FailureApi.as_view(),
        name="api-generation-failure",
    ),
]
