"""Image paths: relative or absolute inside the root, never outside it."""

import pytest

from kubeface.core.paths import OutsideRoot, PathError, canonical, real_file


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("x.jpg", "x.jpg"),
        ("./a//b/x.jpg", "a/b/x.jpg"),
        ("/srv/unknown_people/x.jpg", "x.jpg"),
        ("/srv/unknown_people/./a/x.jpg", "a/x.jpg"),
        ("ünïcode päth.jpg", "ünïcode päth.jpg"),
    ],
)
def test_canonical_form(raw, stored):
    assert canonical(raw, "/srv/unknown_people") == stored


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        ("", PathError, "empty"),
        ("   ", PathError, "empty"),
        (42, PathError, "must be a string, got int"),
        (None, PathError, "must be a string"),
        ("../etc/passwd", OutsideRoot, "'..'"),
        ("a/../../x.jpg", OutsideRoot, "'..'"),
        ("/etc/passwd", OutsideRoot, "outside the image root"),
        ("/srv/unknown_people_other/x.jpg", OutsideRoot, "outside the image root"),
        ("/srv/unknown_people", PathError, "root itself"),
        ("a\x00b.jpg", PathError, "NUL"),
        ("a" * 1025, PathError, "longer than 1024"),
    ],
)
def test_refused(raw, error, message):
    with pytest.raises(error, match=message):
        canonical(raw, "/srv/unknown_people")


def test_a_symlink_out_of_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"x")
    (root / "link.jpg").symlink_to(secret)
    (root / "inside.jpg").write_bytes(b"x")
    (root / "alias.jpg").symlink_to(root / "inside.jpg")
    with pytest.raises(OutsideRoot, match="through a link"):
        real_file("link.jpg", root)
    assert real_file("alias.jpg", root) == (root / "inside.jpg").resolve()
    assert real_file("missing.jpg", root) == (root / "missing.jpg").resolve()
