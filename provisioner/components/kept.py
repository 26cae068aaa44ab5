"""KeptData: the ids of a team's data that an earlier destroy kept, for the program to adopt.

A destroy without `--delete-data` keeps the team's bucket, KMS key, key alias and secrets
(retain_on_delete). The next create must adopt them, not create them: AWS refuses a second
CreateBucket of a bucket you own outside us-east-1, CreateAlias of an alias that exists and
CreateSecret of a name that exists, and a new key could not read what the kept one encrypted.
The engines find the kept resources before running the program (engines/kept_data.py) and
pass their ids here; the storage component imports them (Pulumi's `import_` option).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KeptData:
    bucket: str | None = None  # the bucket's name (its import id)
    key_id: str | None = None  # the KMS key's id
    key_alias: str | None = None  # the alias name, `alias/...`
    secrets: dict[str, str] = field(default_factory=dict)  # secret name -> its ARN (a secret's import id)

    @property
    def empty(self) -> bool:
        return not (self.bucket or self.key_id or self.key_alias or self.secrets)

    def described(self) -> list[str]:
        """One phrase per kept resource, for progress lines and warnings."""
        items = [f"bucket {self.bucket}" if self.bucket else "", f"KMS key {self.key_id}" if self.key_id else "",
                 f"key alias {self.key_alias}" if self.key_alias else ""]
        items += [f"secret {name}" for name in self.secrets]
        return [item for item in items if item]
