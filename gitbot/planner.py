"""Everything gathered for one cycle -> the plans to deliver. Pure: no I/O, the clock is an input.

Binds each image policy to the targets the scanner found (by resource and container, or by a Flux
`$imagepolicy` marker), selects the newest allowed tag, builds the text edits and confirms them, and renders
the messages. A binding that matches nothing, or one container twice, is a ConfigError with the place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from gitbot.canary import CanaryDecision, decide
from gitbot.candidates import Vetting, narrow, skipped_text
from gitbot.config import GROUP_ALL_NAME, ImageSettings, Policy, line_of, pointer_to_field
from gitbot.domain import Assignment, Change, Plan, TagSelection, Target
from gitbot.edits import apply_many
from gitbot.errors import ConfigError
from gitbot.history import (
    History,
)
from gitbot.imageref import ImageRef, is_valid_tag, parse_image, split_registry
from gitbot.manifests import Problem
from gitbot.messages import (
    ImageUpdate,
    image_commit_body,
    image_trailers,
    plan_id,
    promotion_subject,
    promotion_trailers,
    subject_for_images,
    why_this_tag,
)
from gitbot.promotion import Gate
from gitbot.rollout import (
    Observation,
    RouteState,
    apply_changes,
    canary_history,
    canary_policy,
    evidence_text,
    observe_state,
    rollback_plan,
    step_plan,
    weight_changes,
    with_image_restore,
)
from gitbot.versioning import TagFilter, compare, select

_IMAGE_KINDS = frozenset({"image", "tag"})


@dataclass(frozen=True)
class Binding:
    """The targets one image policy manages, bound once per cycle with all planning needs of the policy.

    The image policy's settings, its compiled tag filter, its line in the policy file and each target's
    parsed image reference travel together, so planning neither climbs back to the policy nor parses again.
    """

    image: ImageSettings
    targets: tuple[Target, ...]
    filter: TagFilter
    # Where the image policy is written, for a problem held against it.
    source: str
    line: int
    pointer: str
    # Image reference -> its parts, each distinct reference of the cycle parsed once (shared by the bindings).
    refs: Mapping[str, ImageRef] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def ref(self, target: Target) -> ImageRef:
        """The parts of a target's image reference, parsed when it was bound."""
        ref = self.refs.get(target.value)
        # A reference that did not parse at binding fails here, where it is used, as it always has.
        return ref if ref is not None else parse_image(target.value)

    def tag_of(self, target: Target) -> str | None:
        """The tag a target runs now: a `tag` field's value, else the tag of its reference (None without)."""
        return target.value if target.kind == "tag" else self.ref(target).tag

    def pinned(self, target: Target) -> bool:
        """Whether an `image` target's reference pins a digest."""
        return target.kind == "image" and self.ref(target).digest is not None


def _parsed(targets: Sequence[Target]) -> dict[str, ImageRef]:
    """Each distinct reference the targets hold, parsed once; one that does not parse is left to its user."""
    refs: dict[str, ImageRef] = {}
    for target in targets:
        if target.kind == "tag" or target.value in refs:
            continue
        try:
            refs[target.value] = parse_image(target.value)
        except ConfigError:
            continue
    return refs


def bind_images(policy: Policy, targets: Sequence[Target]) -> list[Binding]:
    """Each image policy with the targets it manages; errors name the policy field that binds wrongly."""
    bindings: list[Binding] = []
    owners: dict[tuple[str, int, str], str] = {}
    # Looked up by resource and by marked image name: each named target costs one lookup, not a pass over all.
    images_of: dict[str, list[Target]] = defaultdict(list)
    marked: dict[str, list[Target]] = defaultdict(list)
    for t in targets:
        if t.kind == "image":
            images_of[t.resource].append(t)
        if t.marker and t.kind in _IMAGE_KINDS | {"digest"}:
            marked[t.marker.split(":")[-1]].append(t)
    for index, image in enumerate(policy.spec.images):
        where = policy.where(f"/spec/images/{index}")
        bound: list[Target] = []
        for t_index, spec in enumerate(image.targets):
            found = [
                t for t in images_of.get(spec.resource, ()) if spec.container is None or t.container == spec.container
            ]
            place = policy.where(f"/spec/images/{index}/targets/{t_index}")
            if not found:
                raise ConfigError(
                    f"image {image.name}: no container image of {spec.resource}"
                    + (f" named {spec.container}" if spec.container else "")
                    + " found under the policy's paths",
                    where=place,
                )
            if len(found) > 1:
                containers = ", ".join(sorted(str(t.container) for t in found))
                raise ConfigError(
                    f"image {image.name}: {spec.resource} has several containers ({containers}); "
                    "name one with container",
                    where=place,
                )
            bound += found
        kinds = _IMAGE_KINDS | {"digest"} if image.digest == "pin" else _IMAGE_KINDS
        # A field named by resource and also marked for this same image policy is one binding, not two. Both
        # come from `targets`, so the same field is the same object (hashing thousands of targets is not free).
        named = {id(t) for t in bound}
        bound += [t for t in marked.get(image.name, ()) if id(t) not in named and t.kind in kinds]
        if not bound:
            raise ConfigError(
                f"image {image.name} binds nothing: give targets, or mark a field with "
                f'# {{"$imagepolicy": "<namespace>:{image.name}"}}',
                where=where,
            )
        for target in bound:
            key = (target.file, target.document, target.pointer)
            if key in owners:
                by = "twice" if owners[key] == image.name else f"which image {owners[key]} binds too"
                raise ConfigError(f"image {image.name} binds {target.file}:{target.line}, {by}", where=where)
            owners[key] = image.name
        pointer = f"/spec/images/{index}"
        bindings.append(
            Binding(
                image,
                tuple(bound),
                policy.image_filter(index),
                policy.source,
                line_of(policy.lines, pointer),
                pointer,
            )
        )
    refs = _parsed([t for b in bindings for t in b.targets])
    return [replace(b, refs=refs) for b in bindings]


@dataclass(frozen=True)
class LookupFailure:
    """An image whose tags could not be listed this cycle: its targets stay as they are, the rest goes ahead."""

    image: str
    host: str
    error: str
    # Whether retrying later may help (a 404 or refused credentials: no).
    retryable: bool = True
    # 2 when the registry's settings are at fault (a plain-HTTP registry not marked insecure), not the registry.
    exit_code: int = 1

    def one_line(self) -> str:
        # Registry errors already start by naming the host; it is said once.
        detail = self.error.removeprefix(f"registry {self.host}: ")
        return f"image {self.image}: tag lookup at registry {self.host} failed: {detail}"


def registry_host(repository: str) -> str:
    """The registry host of an image repository as a person writes it (`docker.io` when it names none)."""
    host, _path = split_registry(parse_image(repository).repository)
    return host or "docker.io"


def lookup_failures(policy: Policy, errors: Mapping[str, str]) -> tuple[LookupFailure, ...]:
    """The failures of the images named in `errors` (image name -> one-line error), in policy order."""
    return tuple(
        LookupFailure(image.name, registry_host(image.repository), " ".join(errors[image.name].split()))
        for image in policy.spec.images
        if image.name in errors
    )


def _new_value(binding: Binding, target: Target, tag: str, digest: str | None = None) -> str:
    if target.kind == "tag":
        return tag
    if target.kind == "digest" and digest:
        return digest
    ref = binding.ref(target)
    return f"{ref.repository}:{tag}" + (f"@{digest}" if digest else "")


def behind_quarantine(tags: Sequence[str], flt: TagFilter, selection: TagSelection) -> bool:
    """Whether a quarantined tag is newer than the selected one.

    A revert from the quarantined tag back to an older one is a decision about that whole line of tags:
    proposing a tag between the two would undo it, so only a tag newer than the quarantined one goes ahead.
    """
    if selection.selected is None or not selection.quarantined:
        return False
    ordered = select(tags, flt).candidates
    return ordered.index(selection.selected) > min(ordered.index(tag) for tag in selection.quarantined)


def plan_image_update(
    binding: Binding,
    tags: Sequence[str],
    history: History,
    vetting: Vetting | None = None,
) -> ImageUpdate | None:
    """The update one image policy asks for, or None when its targets already run the right tag.

    `vetting` is what the registry said of the matching tags (release age, signature, digest), when the
    image policy asks for any of it: only its chosen tag may be proposed.
    """
    image = binding.image
    flt = binding.filter
    quarantined = history.quarantined(image.name)
    selection = narrow(select(tags, flt, quarantine=quarantined.keys()), vetting)
    if selection.selected is None or behind_quarantine(tags, flt, selection):
        return None
    new = selection.selected
    # Newest first, quarantined tags included: a target still running a quarantined tag (a rolled-back
    # canary keeps its image at 0 percent) must not be moved back to an older one.
    ranked = select(tags, flt).candidates if selection.quarantined else selection.candidates
    promoted = {ch.new for c in history.standing(image.name, "promote") for ch in c.changes if ch.target == image.name}
    changes: list[Change] = []
    olds: list[str] = []
    for target in binding.targets:
        if target.kind == "digest":
            continue  # bound with `digest: pin` only; it follows the tag (see `pinned_update`)
        if binding.pinned(target) and image.digest != "pin":
            # A digest pins the exact image; changing the tag beside it would be a lie.
            continue
        old = binding.tag_of(target)
        if old == new:
            continue
        if old is not None and old in ranked and ranked.index(old) < ranked.index(new):
            continue  # never move a target back to an older tag
        if old is not None and old in promoted and old not in ranked:
            continue  # a canary promoted this tag, outside this filter: the next promotion replaces it
        if old is not None and moves_back(old, new, ranked, flt):
            continue  # the list lacks the running tag: it cannot say a newer one is wrong (see held_downgrades)
        olds.append(old or "")
        changes.append(
            Change(
                target.file,
                target.document,
                target.pointer,
                target.resource,
                target.kind,
                target.value,
                _new_value(binding, target, new),
            )
        )
    pin = vetting.digest if vetting is not None and image.digest == "pin" else None
    if pin is not None:
        return pinned_update(binding, new, pin, selection, changes, olds, quarantined, vetting)
    if not changes:
        return None
    notes = skipped_text(vetting) if vetting is not None else ""
    old = olds[0] or "(none)"
    return ImageUpdate(image.name, image.repository, image.filter, old, new, selection, tuple(changes), notes)


def pinned_update(
    binding: Binding,
    new: str,
    pin: str,
    selection: TagSelection,
    moves: Sequence[Change],
    olds: Sequence[str],
    quarantined: Collection[str],
    vetting: Vetting | None,
) -> ImageUpdate | None:
    """The update of an image policy with `digest: pin`: the tag move with digests, or else a re-pin.

    A target already on `new` whose digest differs (a mutable tag such as `latest` or `1.2` was pushed
    again) is pinned to the digest the registry serves now, as its own change naming both digests. A
    digest target (a Flux `:digest` marker) follows only when every tag of the image ends up on `new`.
    """
    image = binding.image
    notes = skipped_text(vetting) if vetting is not None else ""
    moved = {(c.file, c.document, c.pointer) for c in moves}
    changes: list[Change] = []
    repins: list[str] = []
    tags_at_new = True
    for target in binding.targets:
        key = (target.file, target.document, target.pointer)
        if key in moved:
            change = next(c for c in moves if (c.file, c.document, c.pointer) == key)
            changes.append(replace(change, new=_new_value(binding, target, new, pin)))
            continue
        if target.kind == "digest":
            continue
        ref = binding.ref(target) if target.kind == "image" else None
        if binding.tag_of(target) != new:
            tags_at_new = False
            continue
        if ref is not None and ref.digest != pin:
            repins.append(ref.digest or "(none)")
            changes.append(_change(target, _new_value(binding, target, new, pin)))
    if tags_at_new:
        for target in binding.targets:
            if target.kind == "digest" and target.value != pin:
                repins.append(target.value or "(none)")
                changes.append(_change(target, pin))
    if not changes:
        return None
    if moves:
        old = olds[0] or "(none)"
        return ImageUpdate(image.name, image.repository, image.filter, old, new, selection, tuple(changes), notes)
    if f"{new}@{pin}" in quarantined:
        return None  # a person reverted this very pin
    old_pin = repins[0]
    note = f"{new} now serves {pin} (was {old_pin}): pinned again, as the tag moved to another manifest."
    return ImageUpdate(
        image.name, image.repository, image.filter, f"{new}@{old_pin}", f"{new}@{pin}", selection, tuple(changes), note
    )


def _change(target: Target, value: str) -> Change:
    return Change(target.file, target.document, target.pointer, target.resource, target.kind, target.value, value)


def moves_back(old: str, new: str, ranked: Sequence[str], flt: TagFilter) -> bool:
    """Whether `new` is older, by the filter's ordering, than `old`, a running tag the tag list does not have.

    A lagging registry replica, a list cut short or a deleted tag can leave the running tag out of the list;
    the list then says nothing about whether anything older should run. A running tag the filter does not
    admit is not of the policy's line of tags (a person narrowed the filter): moving it is the policy's wish.
    """
    return old not in ranked and is_valid_tag(old) and flt.matches(old) and compare(old, new, flt) > 0


def held_downgrades(
    policy: Policy,
    targets: Sequence[Target],
    tags: Mapping[str, Sequence[str]],
    history: History,
    *,
    bindings: Sequence[Binding] | None = None,
) -> list[Problem]:
    """One Problem, at the image's place in the policy, per image held at a running tag its tag list lacks
    because the newest tag the list allows is older (what `plan_image_update` leaves alone).

    `bindings` are the policy's bindings over `targets` when the caller has bound them already.
    """
    return downgrades_held(bind_images(policy, targets) if bindings is None else bindings, tags, history)


def downgrades_held(bindings: Sequence[Binding], tags: Mapping[str, Sequence[str]], history: History) -> list[Problem]:
    """`held_downgrades` of bound images."""
    problems: list[Problem] = []
    for binding in bindings:
        listed = tags.get(binding.image.name)
        if not listed:
            continue  # a failed lookup is reported as such; an empty list moves nothing
        present = set(listed)
        running = {
            tag
            for target in binding.targets
            if not binding.pinned(target) and (tag := binding.tag_of(target)) is not None and tag not in present
        }
        if not running:
            continue
        flt = binding.filter
        selection = select(listed, flt, quarantine=history.quarantined(binding.image.name).keys())
        if selection.selected is None or behind_quarantine(listed, flt, selection):
            continue
        new = selection.selected
        ranked = select(listed, flt).candidates if selection.quarantined else selection.candidates
        held = sorted(tag for tag in running if moves_back(tag, new, ranked, flt))
        if held:
            problems.append(
                Problem(
                    binding.source,
                    binding.line,
                    f"{pointer_to_field(binding.pointer)}: image {binding.image.name} holds at {', '.join(held)}: "
                    f"the tag list of {binding.image.repository} does not have it and the newest tag it allows, {new}, "
                    "is older; not moving back (a registry replica behind, a list cut short or a deleted tag)",
                    scope="policy",
                )
            )
    return problems


def admitted_tags(binding: Binding, tags: Sequence[str], gate: Gate | None) -> Sequence[str]:
    """The tags the image's promotion gate lets through; the tags its targets run always stay."""
    if gate is None:
        return tags
    return gate.admit(tags, keep={tag for tag in (binding.tag_of(t) for t in binding.targets) if tag})


def gated_update(
    binding: Binding,
    tags: Sequence[str],
    history: History,
    gates: Mapping[str, Gate] | None,
    vetting: Vetting | None = None,
) -> ImageUpdate | None:
    """`plan_image_update` on the tags the image's promotion gate lets through, with the gate's evidence.

    The tags the targets run already stay in the list, so a target is never moved below the tag it runs.
    `vetting` (release age, signature, digest) must have been made on the tags the gate admits.
    """
    gate = gates.get(binding.image.name) if gates else None
    if gate is None:
        return plan_image_update(binding, tags, history, vetting)
    update = plan_image_update(binding, admitted_tags(binding, tags, gate), history, vetting)
    return replace(update, gate=gate.evidence(update.new)) if update is not None else None


def image_plan(
    policy: Policy,
    name: str,
    updates: Sequence[ImageUpdate],
    texts: Mapping[str, str],
    files: Mapping[str, str] | None = None,
) -> Plan:
    """The plan of `updates`; `files`, when given, are its edited files already made (see `edit_in_steps`)."""
    changes = tuple(c for u in updates for c in u.changes)
    pid = plan_id(policy.name, name, "image-update", changes)
    if files is None:
        files = apply_changes(texts, changes)
    return Plan(
        policy=policy.name,
        name=name,
        action="image-update",
        changes=changes,
        files=tuple(sorted(files.items())),
        subject=subject_for_images(policy.name, updates),
        body=image_commit_body(policy.name, updates),
        trailers=image_trailers(policy.name, updates, pid),
        plan_id=pid,
        evidence="\n\n".join(why_this_tag(u) for u in updates),
    )


def plan_images(
    policy: Policy,
    targets: Sequence[Target],
    texts: Mapping[str, str],
    tags: Mapping[str, Sequence[str]],
    history: History,
    *,
    chain: bool,
    gates: Mapping[str, Gate] | None = None,
    vetted: Mapping[str, Vetting] | None = None,
    bindings: Sequence[Binding] | None = None,
) -> list[Plan]:
    """The image-update plans of one cycle.

    With `chain`, each plan starts from the files as the previous plan left them (commits on one branch);
    without, every plan starts from the same base (one pull request each). `gates` (image name -> its
    promotion gate) lets a gated image take only the tags its earlier environment passed. `bindings` are
    the policy's bindings over `targets` when the caller has bound them already.
    """
    updates: list[ImageUpdate] = []
    for binding in bind_images(policy, targets) if bindings is None else bindings:
        vetting = (vetted or {}).get(binding.image.name)
        update = gated_update(binding, tags.get(binding.image.name, ()), history, gates, vetting)
        if update is not None:
            updates.append(update)
    if not updates:
        return []
    if policy.spec.delivery.group == "all":
        return [image_plan(policy, GROUP_ALL_NAME, updates, texts)]
    edited = edit_in_steps(texts, [update.changes for update in updates], chain=chain)
    return [image_plan(policy, u.name, [u], texts, files) for u, files in zip(updates, edited, strict=True)]


def edit_in_steps(texts: Mapping[str, str], steps: Sequence[Sequence[Change]], *, chain: bool) -> list[dict[str, str]]:
    """The files each step of changes edits, every file edited (located and confirmed) once for all steps.

    With `chain`, a step's files hold the steps before it too (commits in turn on one branch); without,
    each step starts from `texts` (one pull request each). Step k's files are those its own changes touch.
    """
    by_file: dict[str, list[list[Assignment]]] = {}
    for step, changes in enumerate(steps):
        for change in changes:
            if change.file not in by_file:
                by_file[change.file] = [[] for _ in steps]
            by_file[change.file][step].append(Assignment(change.document, change.pointer, change.new))
    out: list[dict[str, str]] = [{} for _ in steps]
    files = sorted(by_file.items())
    edited = apply_many([(texts[file], per_step, file, chain) for file, per_step in files])
    for (file, _), results in zip(files, edited, strict=True):
        for step, result in enumerate(results):
            if result is not None:
                out[step][file] = result
    return out


@dataclass(frozen=True)
class CanaryOutcome:
    """What one cycle decided for one canary, and the plan that carries it out (if any)."""

    name: str
    weight: int
    decision: CanaryDecision | None
    plan: Plan | None
    note: str = ""
    verdict: str = "unknown"
    # What the cycle measured (the analysis that decided, when the step took effect), for notifications.
    observation: Observation | None = None
    # The analysis' summary this cycle (e.g. `p99 2.14x GA`), "" without one.
    summary: str = ""

    @property
    def held(self) -> str | None:
        """Why the canary makes no change this cycle (e.g. `analysis inconclusive: ...`); None with a plan."""
        if self.plan is not None:
            return None
        return self.note or (self.decision.reason if self.decision is not None else "no decision")


def _image_tag(bindings: Sequence[Binding], name: str | None) -> str | None:
    for binding in bindings:
        if binding.image.name == name and binding.targets:
            return binding.tag_of(binding.targets[0])
    return None


@dataclass(frozen=True)
class PromotionPin:
    """The digest a canary's promotion writes beside its tag, for a GA image policy with `digest: pin`, or
    why it could not be had (the promotion then holds: an unpinned reference would be pinned a cycle later)."""

    digest: str | None
    problem: str = ""


def promote_plan(
    policy: str,
    route: RouteState,
    bindings: Sequence[Binding],
    decision: CanaryDecision,
    observation: Observation,
    texts: Mapping[str, str],
    digest: str | None = None,
) -> Plan:
    """Give GA the canary's tag and all the traffic back: a separate, reviewable change.

    With `digest` (GA's image policy pins digests), GA gets `repository:tag@digest` and a Flux `:digest`
    field the digest, in the same change.
    """
    canary = route.canary
    tag = _image_tag(bindings, canary.image) or ""
    ga = next(b for b in bindings if b.image.name == canary.promote_to)
    changes = []
    for t in ga.targets:
        if t.kind == "digest" and not digest:
            continue
        new = _new_value(ga, t, tag, digest)
        if (t.value if digest else ga.tag_of(t)) != (new if digest else tag):
            changes.append(Change(t.file, t.document, t.pointer, t.resource, t.kind, t.value, new))
    changes += weight_changes(route, 0)
    pid = plan_id(policy, canary.name, "promote", changes)
    subject = promotion_subject(policy, canary.name, tag, ga.image.name)
    body = evidence_text(decision, observation)
    if digest:
        body += f"\n\n{ga.image.name} is pinned to {tag}@{digest}, the image the registry serves for {tag}."
    old_tag = ga.tag_of(ga.targets[0]) or ""
    trailers = promotion_trailers(policy, canary.name, route.weight, ga.image.name, old_tag, tag, pid)
    files = apply_changes(texts, changes)
    return Plan(
        policy,
        canary.name,
        "promote",
        tuple(changes),
        tuple(sorted(files.items())),
        subject,
        body,
        trailers,
        pid,
        body,
    )


def image_restore(
    bindings: Sequence[Binding], history: History, image: str | None, bad: str | None
) -> tuple[str, tuple[Change, ...]] | None:
    """The tag canary image `image` ran before the bot brought `bad`, and the changes that put it back.

    Read from the standing image update that brought `bad`; None when git does not know one (the tag was
    there before the bot, or set by hand), when that tag is quarantined itself, or for a pinned digest
    (which the tag alone would not restore).
    """
    binding = next((b for b in bindings if b.image.name == image), None)
    if binding is None or not bad or binding.image.digest == "pin":
        return None
    brought = next(
        (
            change
            for commit in history.standing(binding.image.name, "image-update")
            for change in commit.changes
            if change.target == binding.image.name and change.new == bad
        ),
        None,
    )
    good = brought.old if brought is not None else ""
    if not good or good == bad or good in history.quarantined(binding.image.name) or not is_valid_tag(good):
        return None
    changes = tuple(
        _change(target, _new_value(binding, target, good))
        for target in binding.targets
        if target.kind in _IMAGE_KINDS and binding.tag_of(target) == bad and not binding.pinned(target)
    )
    return (good, changes) if changes else None


def plan_canaries(
    policy: Policy,
    targets: Sequence[Target],
    texts: Mapping[str, str],
    history: History,
    routes: Mapping[str, RouteState],
    observations: Mapping[str, Observation],
    now: datetime,
    *,
    busy_images: Collection[str] = (),
    pending_images: Mapping[str, str] | None = None,
    pins: Mapping[str, PromotionPin] | None = None,
    bindings: Sequence[Binding] | None = None,
) -> list[CanaryOutcome]:
    """Decide every canary of the policy and plan the step, rollback or promotion that follows.

    `busy_images`: canary images this cycle's commits change (the canary is decided next cycle).
    `pending_images`: canary images a pull request proposes, with why a step waits for it; only steps
    wait (a step merged before its image would send the traffic to the old one), a rollback does not.
    `pins` (canary name -> digest) is what a promotion to a GA image policy with `digest: pin` writes.
    `bindings` are the policy's bindings over `targets` when the caller has bound them already.
    """
    if bindings is None:
        bindings = bind_images(policy, targets) if policy.spec.images else []
    outcomes = []
    for canary in policy.spec.canaries:
        route = routes[canary.name]
        if canary.image and canary.image in busy_images:
            outcomes.append(
                CanaryOutcome(
                    canary.name, route.weight, None, None, "canary image changes this cycle; deciding next cycle"
                )
            )
            continue
        hist = canary_history(history, canary)
        observation = observations.get(canary.name, Observation(None, None, None))
        canary_tag = _image_tag(bindings, canary.image)
        ga_tag = _image_tag(bindings, canary.promote_to)
        differs = canary_tag is None or ga_tag is None or canary_tag != ga_tag
        state = observe_state(route, hist, observation, now, canary_differs=differs)
        decision = decide(canary_policy(canary, policy), state)
        plan: Plan | None = None
        note = ""
        if decision.action == "promote" and canary.promote_to and not canary_tag:
            # A canary pinned by digest alone (or untagged) has no tag to give GA; `repo:` is no image.
            note = f"canary image {canary.image} runs no tag; promote it to {canary.promote_to} by hand"
        elif decision.action == "step" and canary.image and canary.image in (pending_images or {}):
            note = (pending_images or {})[canary.image]
        elif decision.action == "step" and decision.to_weight is not None:
            plan = step_plan(policy, route, decision, observation, texts, to=decision.to_weight, canary_tag=canary_tag)
        elif decision.action == "rollback":
            plan = rollback_plan(policy, route, hist, decision, observation, texts, canary_tag)
            restore = image_restore(bindings, history, canary.image, canary_tag)
            if restore is not None:
                plan = with_image_restore(canary.image, plan, canary_tag or "", restore[0], restore[1], texts)
        elif decision.action == "promote" and canary.promote_to and _pins_digest(bindings, canary.promote_to):
            pin = (pins or {}).get(canary.name, PromotionPin(None, "its digest was not looked up"))
            if pin.digest is None:
                note = (
                    f"promotion of {canary_tag} to {canary.promote_to} held: {canary.promote_to} pins digests and "
                    f"the digest of {canary_tag} cannot be had ({pin.problem}); retried next cycle"
                )
            else:
                plan = promote_plan(policy.name, route, bindings, decision, observation, texts, pin.digest)
        elif decision.action == "promote" and canary.promote_to:
            plan = promote_plan(policy.name, route, bindings, decision, observation, texts)
        verdict = observation.analysis.verdict if observation.analysis else "unknown"
        summary = observation.analysis.summary if observation.analysis else ""
        outcomes.append(
            CanaryOutcome(
                canary.name,
                route.weight,
                decision,
                plan,
                note,
                verdict=verdict,
                observation=observation,
                summary=summary,
            )
        )
    return outcomes


def _pins_digest(bindings: Sequence[Binding], image: str) -> bool:
    return any(b.image.name == image and b.image.digest == "pin" for b in bindings)
