"""teardown.remove_tree: rm -rf that never follows a link out of the tree."""

import os

from minipod.teardown import remove_tree


def test_removes_nested_files_dirs_and_links_without_following_them(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    tree = tmp_path / "tree"
    (tree / "a" / "b" / "c").mkdir(parents=True)
    (tree / "a" / "b" / "c" / "f").write_text("x")
    (tree / "a" / "g").write_text("y")
    os.mkdir(tree / "a" / "locked", 0)  # as overlayfs leaves its work/work
    os.symlink(outside, tree / "a" / "to-outside")
    os.symlink(outside / "keep", tree / "file-link")
    os.symlink(tree / "nowhere", tree / "dangling")
    remove_tree(str(tree))
    assert not os.path.lexists(tree)
    assert (outside / "keep").read_text() == "precious"


def test_a_missing_path_or_a_single_file(tmp_path):
    remove_tree(str(tmp_path / "missing"))
    single = tmp_path / "single"
    single.write_text("z")
    remove_tree(str(single))
    assert not single.exists()
