"""The daemon's shared registry clients: cycles of many policies asking for the same image at the same moment
share one lookup, each counts only what its own calls sent, and a host that does not answer holds up only the
cycles that ask it."""

from __future__ import annotations

import threading
from pathlib import Path

from gitbot.adapters.registry import OciRegistry
from gitbot.commands.compose import SharedAdapters, SharedTagLists
from gitbot.config import load_policy
from tests.contract.registry.conftest import PODINFO_TAGS, USERS, Registries
from tests.support.registry import free_port


def test_concurrent_cycles_asking_for_one_image_send_one_request(registries: Registries) -> None:
    image = f"{registries.anonymous.host}/stefanprodan/podinfo"
    shared = SharedTagLists(lambda: OciRegistry(cache_ttl=60))
    threads = 16
    barrier = threading.Barrier(threads)
    answers: list[list[str]] = []
    sent: list[int] = []
    lock = threading.Lock()

    def cycle() -> None:
        barrier.wait()
        tags = shared.list_tags(image)
        with lock:
            answers.append(tags)
            sent.append(shared.requests["sent"])

    workers = [threading.Thread(target=cycle) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(answers) == threads
    assert all(sorted(tags) == sorted(PODINFO_TAGS) for tags in answers)
    [client] = shared.clients.values()
    assert client.requests == {registries.anonymous.host: 1}
    # Each thread's count is what its own calls sent: one of them fetched, the others read the cache.
    assert sorted(sent) == [0] * (threads - 1) + [1]
    shared.close()


def test_a_host_that_does_not_answer_holds_up_only_its_own_images(registries: Registries) -> None:
    dead = f"127.0.0.1:{free_port()}"
    shared = SharedTagLists(lambda: OciRegistry(cache_ttl=60, max_attempts=1, timeout=2))
    failed = threading.Event()
    started = threading.Event()

    def ask_dead() -> None:
        started.set()
        try:
            shared.list_tags(f"{dead}/acme/app")
        except Exception:
            failed.set()

    worker = threading.Thread(target=ask_dead)
    worker.start()
    started.wait(5)
    tags = shared.list_tags(f"{registries.anonymous.host}/stefanprodan/podinfo")
    assert sorted(tags) == sorted(PODINFO_TAGS)
    worker.join(30)
    assert failed.is_set()
    assert set(shared.clients) == {dead, registries.anonymous.host}
    shared.close()


def policy_text(name: str, host: str, *, user_env: str = "REG_USER") -> str:
    return (
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        "  git: {url: 'http://127.0.0.1:9/c.git'}\n"
        f"  registries: [{{host: '{host}', usernameEnv: {user_env}, passwordEnv: REG_PASSWORD}}]\n"
    )


def test_policies_share_a_client_only_with_the_same_registry_settings(tmp_path: Path, registries: Registries) -> None:
    host = registries.basic.host
    paths = {}
    for name, user_env in (("a", "REG_USER"), ("b", "REG_USER"), ("c", "OTHER_USER")):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(policy_text(name, host, user_env=user_env))
    env = {
        "REG_USER": "alice",
        "OTHER_USER": "bob",
        "REG_PASSWORD": USERS["alice"],
        "GITBOT_CACHE_DIR": str(tmp_path / "cache"),
    }
    shared = SharedAdapters()
    deps = {name: shared.build_deps(load_policy(path), need_forge=False, env=env) for name, path in paths.items()}
    assert deps["a"].registry is deps["b"].registry
    assert deps["a"].registry is not deps["c"].registry
    image = f"{host}/private/app"
    assert sorted(deps["a"].registry.list_tags(image)) == ["1.0.0", "1.1.0", "2.0.0-rc.1"]
    assert sorted(deps["b"].registry.list_tags(image)) == ["1.0.0", "1.1.0", "2.0.0-rc.1"]
    registry = deps["a"].registry
    assert isinstance(registry, SharedTagLists)
    # b read what a fetched; a tag list fetched with alice's password never answers bob.
    assert sum(registry.clients[host].requests.values()) == 2  # the challenge, then the authorised listing
    for shared_registry in shared.registries.values():
        shared_registry.close()


def test_policies_with_different_windows_share_one_lookup_and_revalidate_past_their_own(
    tmp_path: Path, registries: Registries
) -> None:
    host = registries.anonymous.host
    image = f"{host}/stefanprodan/podinfo"
    env = {"GITBOT_CACHE_DIR": str(tmp_path / "cache")}
    shared = SharedAdapters()
    registries_of = {}
    for name in ("often", "seldom"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\n"
            f"metadata: {{name: {name}}}\nspec:\n  git: {{url: 'http://127.0.0.1:9/c.git'}}\n"
        )
        window = 0.0 if name == "often" else 60.0
        registries_of[name] = shared.build_deps(
            load_policy(path), need_forge=False, env=env, registry_cache_ttl=window
        ).registry
    assert registries_of["often"] is not registries_of["seldom"]
    seldom, often = registries_of["seldom"], registries_of["often"]
    assert isinstance(seldom, SharedTagLists) and isinstance(often, SharedTagLists)
    assert sorted(seldom.list_tags(image)) == sorted(PODINFO_TAGS)
    # The policy with a long window reads what is cached; the other, whose window has passed, asks again.
    assert sorted(seldom.list_tags(image)) == sorted(PODINFO_TAGS)
    assert sorted(often.list_tags(image)) == sorted(PODINFO_TAGS)
    [client] = seldom.clients.values()
    assert often.clients == seldom.clients
    assert client.requests == {host: 2}
    assert client.cache_hits == 1
    for shared_registry in shared.registries.values():
        shared_registry.close()
