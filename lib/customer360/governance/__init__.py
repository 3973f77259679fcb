"""Consent, erasure, role-based access, lineage and data-quality gates."""
