"""Remote drift: someone changes the project in the portal; the next reconcile repairs it."""

from __future__ import annotations

from tests.e2e.support import Sandbox


def test_image_deleted_in_the_portal_is_uploaded_again(synced: Sandbox) -> None:
    victim = synced.images()[0]
    r = synced.http.delete(f"/projects/{synced.project_id}/images", params={"imageIds": victim.id})
    assert r.status_code == 204, r.text

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 1
    assert synced.content() == synced.expected()


def test_tag_removed_in_the_portal_is_added_again(synced: Sandbox) -> None:
    victim = next(i for i in synced.images() if "Dog" in i.tags)
    tag_id = next(
        t["id"]
        for t in synced.http.get(f"/projects/{synced.project_id}/tags").json()
        if t["name"] == "Dog"
    )
    r = synced.http.delete(
        f"/projects/{synced.project_id}/images/tags",
        params={"imageIds": victim.id, "tagIds": tag_id},
    )
    assert r.status_code == 204, r.text

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 0
    assert run.mirror["done"]["add_tags"] == 1
    assert synced.content() == synced.expected()


def test_tag_deleted_in_the_portal_is_recreated(synced: Sandbox) -> None:
    tag_id = next(
        t["id"]
        for t in synced.http.get(f"/projects/{synced.project_id}/tags").json()
        if t["name"] == "Cat"
    )
    r = synced.http.delete(f"/projects/{synced.project_id}/tags/{tag_id}")
    assert r.status_code == 204, r.text

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 0
    assert run.mirror["done"]["create_tags"] == 1
    assert synced.content() == synced.expected()


def test_extra_tag_added_in_the_portal_is_removed(synced: Sandbox) -> None:
    victim = next(i for i in synced.images() if "Dog" in i.tags)
    r = synced.http.post(f"/projects/{synced.project_id}/tags", params={"name": "Wolf"})
    assert r.status_code == 200, r.text
    r = synced.http.post(
        f"/projects/{synced.project_id}/images/tags",
        json={"tags": [{"imageId": victim.id, "tagId": r.json()["id"]}]},
    )
    assert r.status_code == 200, r.text

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["remove_tags"] == 1
    assert synced.content() == synced.expected()
