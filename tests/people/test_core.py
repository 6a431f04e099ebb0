"""People, photos and corrections in a real MariaDB, and re-matching stored faces from their
encodings (no detection): the core the receiver's API and the face service build on."""

from __future__ import annotations

import numpy as np
import pytest

from kubeface.core import matching, people
from kubeface.core.db import Database, execute, last_insert_id

TOLERANCE = 0.6
RNG = np.random.default_rng(7)


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def near(center: np.ndarray, distance: float) -> np.ndarray:
    """A vector exactly ``distance`` away from ``center``."""
    step = unit(RNG.normal(size=128))
    return (center + step * distance).astype(np.float32)


def stored_image(db: Database, path: str, encodings: list[np.ndarray],
                 status: str = "unknown") -> int:
    """An image as the processor leaves it: faces with encodings, matched to nobody."""
    with db.transaction() as conn:
        execute(conn, "INSERT INTO images (path, status, face_count) VALUES (:p, :s, :n)",
                p=path, s=status, n=len(encodings))
        image_id = last_insert_id(conn)
        for i, enc in enumerate(encodings):
            execute(conn, "INSERT INTO faces (image_id, face_index, box_top, box_right,"
                          " box_bottom, box_left, distance, encoding)"
                          " VALUES (:id, :i, 10, 60, 60, 10, 0.9, :e)",
                    id=image_id, i=i, e=matching.encode(enc))
    return image_id


def add_known(db: Database, person_id: int, encoding: np.ndarray, file: str = "k.jpg") -> int:
    with db.transaction() as conn:
        return people.add_photo(conn, person_id, "upload", file, "0" * 64,
                                people.Box(0, 10, 10, 0), encoding)


def image_row(db: Database, image_id: int):
    return db.query("SELECT i.status, p.name AS person FROM images i"
                    " LEFT JOIN person p ON p.id = i.person_id WHERE i.id = :id", id=image_id)[0]


def face_people(db: Database, image_id: int) -> list[str | None]:
    return [r.name for r in db.query(
        "SELECT p.name FROM faces f LEFT JOIN person p ON p.id = f.person_id"
        " WHERE f.image_id = :id ORDER BY f.face_index", id=image_id)]


# -- people -----------------------------------------------------------------------------------


def test_create_rename_list_and_delete_people(db):
    ada = people.create_person(db, "  Ada Lovelace ")
    assert ada.name == "Ada Lovelace"
    people.create_person(db, "Alan Turing")
    with pytest.raises(people.PeopleError) as dup:
        people.create_person(db, "Ada Lovelace")
    assert dup.value.status == 409
    found, total = people.list_people(db, q="ADA")
    assert [p.name for p in found] == ["Ada Lovelace"] and total == 1
    assert people.list_people(db, q="%")[1] == 0  # a wildcard is a character, not "anything"
    with pytest.raises(people.PeopleError) as taken:
        people.rename_person(db, ada.id, "Alan Turing")
    assert taken.value.status == 409
    assert people.rename_person(db, ada.id, "Countess Lovelace").name == "Countess Lovelace"
    assert people.rename_person(db, ada.id, "Countess Lovelace").name == "Countess Lovelace"
    people.delete_person(db, ada.id)
    assert people.get_person(db, ada.id) is None
    for missing in (lambda: people.delete_person(db, ada.id),
                    lambda: people.rename_person(db, ada.id, "X")):
        with pytest.raises(people.PeopleError) as err:
            missing()
        assert err.value.status == 404


@pytest.mark.parametrize("bad", ["", "   ", "x" * 256, "tab\tname", "zero\u200bwidth", 5, None])
def test_a_bad_name_is_refused_with_a_reason(db, bad):
    with pytest.raises(people.PeopleError) as err:
        people.create_person(db, bad)
    assert err.value.status == 400 and "name" in err.value.message
    assert db.query("SELECT COUNT(*) AS n FROM person")[0].n == 0


def test_every_change_of_people_moves_the_version(db):
    seen = [matching.version(db)]
    person = people.create_person(db, "Grace")
    seen.append(matching.version(db))
    photo = add_known(db, person.id, unit(RNG.normal(size=128)))
    seen.append(matching.version(db))
    people.remove_photo(db, person.id, photo)
    seen.append(matching.version(db))
    people.rename_person(db, person.id, "Grace Hopper")
    seen.append(matching.version(db))
    people.delete_person(db, person.id)
    seen.append(matching.version(db))
    assert seen == sorted(set(seen)), seen


# -- matching ---------------------------------------------------------------------------------


def test_the_matrix_match_is_the_exact_nearest_known_face():
    known = RNG.normal(size=(300, 128)).astype(np.float32) * 0.1
    queries = RNG.normal(size=(50, 128)).astype(np.float32) * 0.1
    table = matching.Known(known, np.arange(300), np.arange(300) % 7, ("f",) * 300, ("n",) * 300)
    best, distances = table.match(queries)
    brute = np.linalg.norm(known[None].astype(np.float64) - queries[:, None], axis=2)
    assert (best == brute.argmin(axis=1)).all()
    assert np.allclose(distances, brute.min(axis=1), atol=1e-9)
    # Excluding a person: the closest face of anyone else.
    excluded = [frozenset({int(table.person_ids[b])}) for b in best]
    second, _ = table.match(queries, excluded)
    assert all(table.person_ids[s] != table.person_ids[b] for s, b in zip(second, best,
                                                                          strict=True))


def test_nothing_known_matches_nothing():
    best, distances = matching.EMPTY.match(np.zeros((3, 128), np.float32))
    assert best.tolist() == [-1, -1, -1] and np.isinf(distances).all()


def test_encodings_round_trip_and_have_128_numbers():
    vector = RNG.normal(size=128).astype(np.float32)
    assert (matching.decode(matching.encode(vector)) == vector).all()
    with pytest.raises(ValueError, match="128"):
        matching.encode([1.0, 2.0])


# -- re-matching stored faces -----------------------------------------------------------------


def test_a_new_person_relabels_stored_images_without_detection(db):
    ada_face = unit(RNG.normal(size=128))
    stranger = unit(RNG.normal(size=128))
    photo_of_ada = stored_image(db, "ada.jpg", [near(ada_face, 0.3)])
    group = stored_image(db, "group.jpg", [near(stranger, 0.2), near(ada_face, 0.45)])
    nobody = stored_image(db, "nobody.jpg", [near(stranger, 0.1)])

    ada = people.create_person(db, "Ada")
    add_known(db, ada.id, ada_face)
    result = matching.rematch(db, TOLERANCE)
    assert result.faces == 4 and result.changed == 4 and result.images == 2

    assert tuple(image_row(db, photo_of_ada)) == ("processed", "Ada")
    assert tuple(image_row(db, group)) == ("processed", "Ada")
    assert face_people(db, group) == [None, "Ada"]
    assert tuple(image_row(db, nobody)) == ("unknown", None)
    distance = db.query("SELECT distance FROM faces WHERE image_id = :i", i=photo_of_ada)[0]
    assert distance.distance == pytest.approx(0.3, abs=1e-5)
    again = matching.rematch(db, TOLERANCE)
    assert again.changed == 0 and again.images == 0  # nothing to write a second time

    people.delete_person(db, ada.id)
    matching.rematch(db, TOLERANCE)
    assert tuple(image_row(db, photo_of_ada)) == ("unknown", None)
    assert face_people(db, group) == [None, None]


def test_a_rejected_face_is_matched_to_someone_else_and_never_back(db):
    center = unit(RNG.normal(size=128))
    twin = near(center, 0.25)
    image = stored_image(db, "twins.jpg", [near(center, 0.1)])
    first, second = people.create_person(db, "First"), people.create_person(db, "Second")
    add_known(db, first.id, center)
    add_known(db, second.id, twin)
    matching.rematch(db, TOLERANCE)
    assert face_people(db, image) == ["First"]

    people.reject_face(db, people.get_face(db, image, 0))
    matching.rematch(db, TOLERANCE)
    assert face_people(db, image) == ["Second"]
    people.reject_face(db, people.get_face(db, image, 0))
    matching.rematch(db, TOLERANCE)
    assert face_people(db, image) == [None]
    assert tuple(image_row(db, image)) == ("unknown", None)
    with pytest.raises(people.PeopleError) as nobody:
        people.reject_face(db, people.get_face(db, image, 0))
    assert nobody.value.status == 409


def test_naming_a_face_makes_it_a_known_face_that_relabels_others(db):
    someone = unit(RNG.normal(size=128))
    named = stored_image(db, "a.jpg", [near(someone, 0.2)])
    other = stored_image(db, "b.jpg", [near(someone, 0.25)])
    grace = people.create_person(db, "Grace")
    photo = people.assign_face(db, people.get_face(db, named, 0), grace.id, "people/c.jpg",
                               "1" * 64)
    matching.rematch(db, TOLERANCE)
    assert tuple(image_row(db, named)) == ("processed", "Grace")
    assert tuple(image_row(db, other)) == ("processed", "Grace")
    assert [p.id for p in people.photos_of(db, grace.id)] == [photo]
    assert people.get_person(db, grace.id).images == 2

    # "Not Grace" on the named face removes the photo it gave, and the other image follows.
    people.reject_face(db, people.get_face(db, named, 0))
    matching.rematch(db, TOLERANCE)
    assert people.photos_of(db, grace.id) == []
    assert tuple(image_row(db, named)) == ("unknown", None)
    assert tuple(image_row(db, other)) == ("unknown", None)
    # Naming it Grace again withdraws the rejection.
    people.assign_face(db, people.get_face(db, named, 0), grace.id, "people/c.jpg", "1" * 64)
    matching.rematch(db, TOLERANCE)
    assert tuple(image_row(db, named)) == ("processed", "Grace")


def test_unknown_ids_are_404(db):
    image = stored_image(db, "x.jpg", [unit(RNG.normal(size=128))])
    for call in (lambda: people.get_face(db, image + 1, 0),
                 lambda: people.get_face(db, image, 5),
                 lambda: people.remove_photo(db, 999, 1),
                 lambda: people.assign_face(db, people.get_face(db, image, 0), 999, "f", "0")):
        with pytest.raises(people.PeopleError) as err:
            call()
        assert err.value.status == 404, err.value.message


def test_rematch_of_some_images_touches_only_them(db):
    center = unit(RNG.normal(size=128))
    one = stored_image(db, "one.jpg", [near(center, 0.1)])
    two = stored_image(db, "two.jpg", [near(center, 0.1)])
    person = people.create_person(db, "P")
    add_known(db, person.id, center)
    result = matching.rematch(db, TOLERANCE, image_ids=[one])
    assert result.faces == 1
    assert tuple(image_row(db, one)) == ("processed", "P")
    assert tuple(image_row(db, two)) == ("unknown", None)
