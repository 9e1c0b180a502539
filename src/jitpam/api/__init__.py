"""The REST API: a thin HTTP face over the use cases (``jitpam.services``)."""
