"""The organization every benchmark starts from, made through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from jitpam.domain.directory import Organization
from jitpam.services import organizations
from jitpam.services.context import Caller, ServiceContext


@dataclass(frozen=True)
class BenchOrg:
    org: Organization
    admin: Caller
    domain: str  # users are <name>@<domain>


def bench_organization(ctx: ServiceContext) -> BenchOrg:
    """A fresh organization ``bench-<random>`` with the Exchange catalog and an administrator."""
    suffix = uuid.uuid4().hex[:8]
    domain = f"{suffix}.bench"
    org, admin = organizations.create_organization(
        ctx,
        name=f"bench-{suffix}",
        admin_upn=f"admin@{domain}",
        admin_display_name="Admin",
        catalogs=("exchange",),
    )
    return BenchOrg(org, Caller(org.id, admin.id), domain)
