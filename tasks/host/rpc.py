"""Kaggle's RPCs as kagglesdk defines them: each method's request and response types, read from the client itself.

The host answers with these types' own `to_dict`, so field names, enum values and date formats are
the client's, not ours: a field that does not exist, or a value of the wrong type, fails at once.
"""

from __future__ import annotations

import functools
import inspect
from datetime import datetime, timezone
from enum import Enum

from kagglesdk.blobs.services.blob_api_service import BlobApiClient
from kagglesdk.competitions.services.competition_api_service import CompetitionApiClient
from kagglesdk.datasets.services.dataset_api_service import DatasetApiClient
from kagglesdk.discussions.services.discussions_api_service import DiscussionApiClient
from kagglesdk.kaggle_object import KaggleObject, ListSerializer, MapSerializer
from kagglesdk.kernels.services.kernels_api_service import KernelsApiClient
from kagglesdk.models.services.model_api_service import ModelApiClient
from kagglesdk.security.services.oauth_service import OAuthClient
from kagglesdk.users.services.account_service import AccountClient

SERVICE_CLIENTS = (CompetitionApiClient, KernelsApiClient, DatasetApiClient, BlobApiClient, OAuthClient,
                   DiscussionApiClient, ModelApiClient, AccountClient)


class _Recorder:
    """Stands in for the HTTP client: records which RPC a service method calls, with which types."""

    def call(self, service: str, method: str, request: KaggleObject, response_type):
        self.last = (f"{service}/{method}", type(request), response_type)


@functools.cache
def rpc_types() -> dict[str, tuple[type, type | None]]:
    """`service/Method` -> (request type, response type) for every method of the services the host serves."""
    types = {}
    for client_type in SERVICE_CLIENTS:
        recorder = _Recorder()
        client = client_type(recorder)
        for name, method in inspect.getmembers(client, inspect.ismethod):
            if name.startswith("_"):
                continue
            method()  # an empty request: the method only builds it and calls the recorder
            rpc, request_type, response_type = recorder.last
            types[rpc] = (request_type, response_type)
    return types


def check_shape(kind: type, payload: dict, path: str = "") -> None:
    """A TypeError naming the first field whose JSON value has the wrong shape, before kagglesdk's `from_dict`
    reads it: that takes a string given for a list as the list of its characters, an object as the list of its
    keys, and fails without a message on a number given for an enum."""
    for field in kind._fields:
        value = payload.get(field.json_name)
        if value is None:
            continue
        name = path + field.field_name
        items = [value]
        if isinstance(field.serializer, ListSerializer):
            if not isinstance(value, list):
                raise TypeError(f"{name} must be a list")
            items = value
        elif isinstance(field.serializer, MapSerializer):
            if not isinstance(value, dict):
                raise TypeError(f"{name} must be an object")
            items = list(value.values())
        kind_of_item = field.field_type if isinstance(field.field_type, type) else object
        for item in items:
            if issubclass(kind_of_item, KaggleObject):
                if not isinstance(item, dict):
                    raise TypeError(f"{name} must be an object")
                check_shape(kind_of_item, item, name + ".")
            elif issubclass(kind_of_item, Enum) and not isinstance(item, str):
                raise TypeError(f"{name} must be one of {', '.join(member.name for member in kind_of_item)}")


def checked(instance: KaggleObject) -> KaggleObject:
    """Run every field set by `from_dict` (which assigns without checking) through its typed setter: a value of
    the wrong type raises TypeError naming the field, as the client's own objects would."""
    for field in type(instance)._fields:
        value = getattr(instance, field.private_field_name)
        if value is None:
            continue
        setattr(instance, field.field_name, value)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, KaggleObject):
                checked(item)
    return instance


def make(kind: type, **fields) -> KaggleObject:
    """A kagglesdk object with these fields set through its own setters (which check each type)."""
    instance = kind()
    for name, value in fields.items():
        if value is not None:
            setattr(instance, name, value)
    return instance


def naive_utc(moment: str | datetime | None) -> datetime | None:
    """A date as kagglesdk carries it: naive, in UTC (it writes `isoformat() + "Z"`)."""
    if moment is None or moment == "":
        return None
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value
