"""Asking the registry about the tags an image policy may move to: its `minAge`, `digest` and `verify`.

Owns the gate of each image policy (its cosign key read from the file or the environment variable the
policy names, errors at their line) and the walk of `gitbot.candidates.vet` over the registry, one image
at a time: a registry that cannot answer spoils only that image, as a failed tag lookup does. Images that
ask for none of these cost no request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial

from gitbot.candidates import Gate, Vetting, vet
from gitbot.config import Policy
from gitbot.domain import Target
from gitbot.errors import ConfigError, RemoteError
from gitbot.history import History
from gitbot.planner import (
    Binding,
    LookupFailure,
    PromotionPin,
    bind_images,
    current_tag,
    image_filter,
    lookup_failures,
)
from gitbot.ports import Registry, TagInspector
from gitbot.rollout import RouteState
from gitbot.signatures import load_public_key
from gitbot.versioning import parse_image, select


def image_gate(policy: Policy, index: int, environ: Mapping[str, str] | None = None) -> Gate:
    """The gate of image policy `index`; a key that cannot be read or is not a P-256 key names its field."""
    image = policy.spec.images[index]
    key = None
    cosign = image.verify.cosign if image.verify is not None else None
    if cosign is not None:
        base = f"/spec/images/{index}/verify/cosign"
        if cosign.public_key_file is not None:
            return Gate(min_age=image.min_age, pin=image.digest == "pin", key=policy.cosign_key_file(index))
        where = policy.where(f"{base}/publicKeyEnv")
        env = os.environ if environ is None else environ
        text = env.get(cosign.public_key_env or "")
        if not text:
            raise ConfigError(f"environment variable {cosign.public_key_env} is not set or empty", where=where)
        key = load_public_key(text.encode(), where=where)
    return Gate(min_age=image.min_age, pin=image.digest == "pin", key=key)


def vet_images(
    policy: Policy,
    registry: Registry,
    targets: Sequence[Target],
    tags: Mapping[str, Sequence[str]],
    history: History,
    now: datetime,
    environ: Mapping[str, str] | None = None,
    bound: Sequence[Binding] | None = None,
) -> tuple[dict[str, Vetting], tuple[LookupFailure, ...]]:
    """The vetting of every image policy that asks for one, and the images whose registry failed it.
    `bound`: the cycle's `bind_images(policy, targets)`, when it has them."""
    vetted: dict[str, Vetting] = {}
    errors: dict[str, str] = {}
    if bound is None:
        bound = bind_images(policy, targets) if policy.spec.images else []
    bindings = {b.image.name: b for b in bound}
    for index, image in enumerate(policy.spec.images):
        gate = image_gate(policy, index, environ)
        if not gate.needs_facts or image.name not in tags or image.name not in bindings:
            continue
        if not isinstance(registry, TagInspector):
            errors[image.name] = "this registry client cannot report digests, creation times or signatures"
            vetted[image.name] = Vetting(None)
            continue
        inspector: TagInspector = registry
        selection = select(tags[image.name], image_filter(policy, index), quarantine=history.quarantined(image.name))
        running = {tag for tag in (current_tag(t) for t in bindings[image.name].targets) if tag}

        inspect = partial(
            inspector.inspect_tag, image.repository, created=gate.min_age is not None, signatures=gate.key is not None
        )
        try:
            vetted[image.name] = vet(selection.candidates, gate, inspect, now, running=running)
        except RemoteError as exc:
            errors[image.name] = exc.one_line()
            vetted[image.name] = Vetting(None)
    return vetted, lookup_failures(policy, errors)


def promotion_pins(
    policy: Policy, registry: Registry, targets: Sequence[Target], routes: Mapping[str, RouteState]
) -> dict[str, PromotionPin]:
    """The digest each canary at its last step would give a GA image policy with `digest: pin` on promotion.

    The digest the canary's own reference pins (the very image its analysis judged), else the one the
    registry serves for the canary's tag now (one HEAD, revalidated by ETag). Canaries below their last
    step, or promoting to an image policy that pins nothing, cost no request.
    """
    pins: dict[str, PromotionPin] = {}
    bindings = {b.image.name: b for b in bind_images(policy, targets)} if policy.spec.images else {}
    pinned = {image.name for image in policy.spec.images if image.digest == "pin"}
    for canary in policy.spec.canaries:
        route = routes.get(canary.name)
        own = bindings.get(canary.image or "")
        if canary.on_complete != "promote" or canary.promote_to not in pinned or own is None or route is None:
            continue
        if route.weight < canary.steps[-1] or not own.targets:
            continue
        target = own.targets[0]
        tag = current_tag(target)
        if not tag:
            continue
        image = next(i for i in policy.spec.images if i.name == canary.image)
        ref = parse_image(target.value) if target.kind == "image" else None
        if ref is not None and ref.digest:
            pins[canary.name] = PromotionPin(ref.digest)
        elif not isinstance(registry, TagInspector):
            pins[canary.name] = PromotionPin(None, "this registry client cannot report digests")
        else:
            try:
                pins[canary.name] = PromotionPin(registry.inspect_tag(image.repository, tag).digest)
            except RemoteError as exc:
                pins[canary.name] = PromotionPin(None, exc.one_line())
    return pins
