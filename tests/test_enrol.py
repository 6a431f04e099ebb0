"""Known people: manifest and file-name convention, enrolled idempotently."""

import pytest

from kubeface.core import known_people
from kubeface.enrol import enrol


def touch(folder, *names):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded by enrolment")


@pytest.mark.parametrize(
    ("file_name", "person"),
    [
        ("barack_obama.jpg", "Barack Obama"),
        ("barack_obama_2.jpg", "Barack Obama"),
        ("grace-hopper3.png", "Grace Hopper"),
        ("sub/joe_biden.JPEG", "Joe Biden"),
        ("2024.jpg", "2024"),
    ],
)
def test_name_from_file(file_name, person):
    assert known_people.name_from_file(file_name) == person


def test_manifest_overrides_the_file_name(tmp_path):
    touch(tmp_path, "img001.jpg", "grace_hopper.jpg", "notes.txt")
    (tmp_path / "people.csv").write_text("image,name\nimg001.jpg,Barack Obama\n")
    found = {k.image_name: k.person for k in known_people.scan(tmp_path)}
    assert found == {"img001.jpg": "Barack Obama", "grace_hopper.jpg": "Grace Hopper"}


def test_manifest_naming_a_missing_image_is_an_error(tmp_path):
    touch(tmp_path, "a.jpg")
    (tmp_path / "people.csv").write_text("image,name\nb.jpg,Somebody\n")
    with pytest.raises(known_people.ManifestError, match=r"not there: b\.jpg"):
        known_people.scan(tmp_path)


def test_manifest_without_header_is_an_error(tmp_path):
    touch(tmp_path, "a.jpg")
    (tmp_path / "people.csv").write_text("a.jpg,Somebody\n")
    with pytest.raises(known_people.ManifestError, match="header 'image,name'"):
        known_people.scan(tmp_path)


def people(db):
    return {
        r.image_name: r.name
        for r in db.query(
            "SELECT pi.image_name, p.name FROM person_images pi"
            " JOIN person p ON p.id = pi.person_id"
        )
    }


def test_enrolment_twice_adds_nobody_twice(db, tmp_path):
    touch(tmp_path, "barack_obama.jpg", "barack_obama_2.jpg", "joe_biden.jpg")
    first = enrol(db, tmp_path)
    assert (first.people, first.images, first.changed) == (2, 3, 5)
    second = enrol(db, tmp_path)
    assert second.changed == 0
    assert db.query("SELECT COUNT(*) AS n FROM person")[0].n == 2
    assert people(db) == {
        "barack_obama.jpg": "Barack Obama",
        "barack_obama_2.jpg": "Barack Obama",
        "joe_biden.jpg": "Joe Biden",
    }


def test_a_renamed_person_moves_the_image(db, tmp_path):
    touch(tmp_path, "x.jpg")
    enrol(db, tmp_path)
    (tmp_path / "people.csv").write_text("image,name\nx.jpg,Grace Hopper\n")
    assert enrol(db, tmp_path).changed == 2  # a new person, and the image moved to them
    assert people(db) == {"x.jpg": "Grace Hopper"}
