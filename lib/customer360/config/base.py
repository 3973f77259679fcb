"""What every configuration model shares: frozen, and no key it does not know (a typo in a YAML
file fails at start-up instead of being ignored)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: a table a policy or check names: ``<layer>.<table>``, fnmatch wildcards allowed
TABLE_PATTERN = r"^(bronze|silver|gold|ops)\.[a-z0-9_*?\[\]]+$"


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
