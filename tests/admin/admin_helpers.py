"""Shared pieces of the admin tests: a helper to shape users, groups and roles in the fake tenant, and
environments."""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncd.cli import main
from syncd.dataverse.environments import EnvironmentSpec, create_environment
from syncd.directory.fake.store import TenantStore
from syncd.rules import GLOBAL_ADMINISTRATOR

SALES_SKU = "1e1a282c-9c54-43a2-9310-98ef728faace"  # a full Dataverse licence
E3_SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"  # Office 365 E3: a free Dataverse plan (R4e)
EXCHANGE_SKU = "4b9405b0-7788-4568-add1-99614e613b69"  # Office-only


class Tenant:
    """Write access to the fake tenant, in the words of the tests."""

    def __init__(self, store: TenantStore, summary: dict[str, Any]) -> None:
        self.store = store
        self.summary = summary
        self.domain = summary["domain"]

    def user(
        self,
        alias: str,
        *,
        licence: str | None = SALES_SKU,
        enabled: bool = True,
        given: str | None = "Given",
        mail: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "displayName": alias.title(),
            "userPrincipalName": f"{alias}@{self.domain}",
            "accountEnabled": enabled,
            "givenName": given,
            "surname": "Tester",
            "mail": mail or f"{alias}@{self.domain}",
        }
        user: dict[str, Any] = orjson.loads(self.store.create_user(body))
        if licence:
            self.licence(user["id"], licence)
        return user

    def licence(self, user_id: str, sku: str) -> None:
        self.store.assign_licenses(user_id, {"addLicenses": [{"skuId": sku}], "removeLicenses": []})

    def unlicence(self, user_id: str, sku: str = SALES_SKU) -> None:
        self.store.assign_licenses(user_id, {"addLicenses": [], "removeLicenses": [sku]})

    def group(self, name: str) -> str:
        nick = name.lower().replace(" ", "") + uuid.uuid4().hex[:6]
        body = {"displayName": name, "mailNickname": nick, "securityEnabled": True, "mailEnabled": False}
        return str(orjson.loads(self.store.create_group(body))["id"])

    def member(self, group_id: str, object_id: str) -> None:
        self.store.add_group_member(group_id, object_id)

    def owner(self, group_id: str, object_id: str) -> None:
        self.store.add_group_owner(group_id, object_id)

    def admin(self, object_id: str, template: str = GLOBAL_ADMINISTRATOR) -> None:
        self.store.add_role_member(template, object_id)

    def disable(self, object_id: str) -> None:
        self.store.update_user(object_id, {"accountEnabled": False})

    def delete(self, object_id: str) -> None:
        self.store.soft_delete_user(object_id)

    @property
    def service_principals(self) -> list[dict[str, str]]:
        return list(self.summary["service_principals"])


def make_env(engine: Engine, name: str = "prod", **kw: Any) -> int:
    with Session(engine) as session, session.begin():
        return create_environment(session, EnvironmentSpec(name=name, **kw)).id


class Cli:
    """`syncd` in-process: (exit code, stdout, stderr), or (exit code, parsed JSON) with ``json``."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> tuple[int, Any]:
        code, out, _ = self(*args, "--json")
        return code, json.loads(out)
