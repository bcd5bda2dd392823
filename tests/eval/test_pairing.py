"""Pairing by name and by manifest; every mismatch is a clear error; never by listing order."""

import json

import numpy as np
import pytest
from eval_fixtures import noisy, smooth_image, write_image

from ttdnet.errors import TtdnetError
from ttdnet.eval.pairing import pair_images


@pytest.fixture
def image_sets(tmp_path):
    """Ground truth (8 images, 40 px, nested folders) and reconstructions (2 noisy samples each, ``_s<k>`` names)."""
    rng = np.random.default_rng(0)
    gt_dir, rec_dir = tmp_path / "gt", tmp_path / "rec"
    gts = {}
    for i in range(8):
        key = f"{i:05d}_concept{i}/concept{i}_01b"
        gts[key] = smooth_image(rng, 40)
        write_image(gt_dir / f"{key}.jpg" if i % 2 else gt_dir / f"{key}.png", gts[key])
        for sample in range(2):
            write_image(rec_dir / f"{key}_s{sample}.png", noisy(rng, gts[key], 0.08))
    return gt_dir, rec_dir, gts


def test_pairs_by_relative_path_with_samples(image_sets):
    gt_dir, rec_dir, gts = image_sets
    pairs = pair_images(gt_dir, rec_dir)
    assert pairs.trial_ids == sorted(gts)
    assert pairs.sample_ids == ["0", "1"]
    for s in range(2):
        for trial, gt_path, rec_path in zip(pairs.trial_ids, pairs.gt_paths, pairs.rec_paths[s]):
            assert gt_path.relative_to(gt_dir).with_suffix("").as_posix() == trial
            assert rec_path.relative_to(rec_dir).as_posix() == f"{trial}_s{s}.png"


def test_single_sample_and_stem_matching(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("b", "a", "c"):
        write_image(tmp_path / "gt" / "nested" / f"{name}.jpg", smooth_image(rng, 16))
        write_image(tmp_path / "rec" / f"{name}.png", smooth_image(rng, 16))
    with pytest.raises(TtdnetError, match="match no ground-truth image"):
        pair_images(tmp_path / "gt", tmp_path / "rec")  # keys are nested/a ... by path
    pairs = pair_images(tmp_path / "gt", tmp_path / "rec", match_by="stem")
    assert pairs.trial_ids == ["a", "b", "c"] and pairs.sample_ids == ["0"]
    assert [p.stem for p in pairs.rec_paths[0]] == ["a", "b", "c"]


def test_missing_extra_duplicate_and_uneven_are_errors(image_sets):
    gt_dir, rec_dir, gts = image_sets
    first, second = sorted(gts)[:2]
    (rec_dir / f"{first}_s0.png").rename(rec_dir / f"{first}_s0.jpeg.bak")
    with pytest.raises(TtdnetError, match=r"every trial needs the same samples.*" + first.split("/")[0]):
        pair_images(gt_dir, rec_dir)
    (rec_dir / f"{first}_s1.png").unlink()
    with pytest.raises(TtdnetError, match="have no reconstruction"):
        pair_images(gt_dir, rec_dir)
    pairs = pair_images(gt_dir, rec_dir, allow_missing=True)
    assert first not in pairs.trial_ids and pairs.missing_trials == [first]
    write_image(rec_dir / "stray.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(TtdnetError, match="match no ground-truth image: stray"):
        pair_images(gt_dir, rec_dir, allow_missing=True)
    (rec_dir / "stray.png").unlink()
    write_image(rec_dir / f"{second}_s0.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(TtdnetError, match="duplicate reconstructions"):
        pair_images(gt_dir, rec_dir, allow_missing=True)


def test_mixed_names_and_duplicate_ground_truth_keys(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        write_image(tmp_path / "gt" / f"{name}.png", smooth_image(rng, 16))
    write_image(tmp_path / "rec" / "a.png", smooth_image(rng, 16))
    write_image(tmp_path / "rec" / "a_s1.png", smooth_image(rng, 16))
    write_image(tmp_path / "rec" / "b_s0.png", smooth_image(rng, 16))
    write_image(tmp_path / "rec" / "b_s1.png", smooth_image(rng, 16))
    with pytest.raises(TtdnetError, match="mix"):
        pair_images(tmp_path / "gt", tmp_path / "rec")
    write_image(tmp_path / "gt" / "a.jpg", smooth_image(rng, 16))
    with pytest.raises(TtdnetError, match="duplicate keys"):
        pair_images(tmp_path / "gt", tmp_path / "rec")


def test_manifest(image_sets, tmp_path):
    gt_dir, rec_dir, gts = image_sets
    out = tmp_path / "gen"
    rows = []
    for index, key in enumerate(sorted(gts, reverse=True)):  # listed out of order on purpose
        gt_file = next(gt_dir.glob(f"{key}.*"))
        for sample in (0, 1):
            target = out / "images" / f"img{index}_{sample}.png"
            write_image(target, smooth_image(np.random.default_rng(index), 16))
            rows.append(
                {
                    "trial": f"t{index}",
                    "sample": sample,
                    "image": f"images/{target.name}",
                    "ground_truth": str(gt_file.relative_to(gt_dir)),
                    "seed": 3,
                }
            )
    (out / "manifest.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    pairs = pair_images(gt_dir, out)  # the manifest inside the folder is found
    assert pairs.source["mode"] == "manifest"
    # Trials follow the ground-truth order (sorted keys), whatever the manifest order.
    assert [p.relative_to(gt_dir).with_suffix("").as_posix() for p in pairs.gt_paths] == sorted(gts)
    assert pairs.trial_ids[0] == f"t{len(gts) - 1}"
    assert pairs.rec_paths[1][0].name == f"img{len(gts) - 1}_1.png"
    rows.append(dict(rows[0]))
    (out / "manifest.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.raises(TtdnetError, match="duplicate trial 't0' sample '0'"):
        pair_images(gt_dir, out)
    (out / "manifest.jsonl").write_text('{"trial": "x", "image": "a.png"}\n')
    with pytest.raises(TtdnetError, match="missing keys"):
        pair_images(gt_dir, out)


def test_listing_order_does_not_matter(tmp_path):
    rng = np.random.default_rng(2)
    names = ["q", "c", "x", "a", "m"]
    images = {name: smooth_image(rng, 16) for name in names}
    for order, folder in ((names, "one"), (sorted(names), "two")):
        for name in order:  # files created in a different order in each folder
            write_image(tmp_path / folder / "gt" / f"{name}.png", images[name])
            write_image(tmp_path / folder / "rec" / f"{name}.png", images[name])
    a = pair_images(tmp_path / "one" / "gt", tmp_path / "one" / "rec")
    b = pair_images(tmp_path / "two" / "gt", tmp_path / "two" / "rec")
    assert a.trial_ids == b.trial_ids == sorted(names)
    assert [p.name for p in a.rec_paths[0]] == [p.name for p in b.rec_paths[0]] == [f"{n}.png" for n in sorted(names)]


def make_things_root(root, concepts, rng):
    image_set = root / "image_set"
    files = []
    for concept in concepts:
        name = concept.split("_", 1)[1]
        file = f"{name}_01b.jpg"
        files.append(file)
        write_image(image_set / "test_images" / concept / file, smooth_image(rng, 24))
    metadata = {
        "train_img_concepts": ["00001_aardvark"],
        "train_img_files": ["aardvark_01b.jpg"],
        "train_img_concepts_THINGS": ["00001_aardvark"],
        "test_img_concepts": list(concepts),
        "test_img_files": files,
        "test_img_concepts_THINGS": list(concepts),
    }
    np.save(image_set / "image_metadata.npy", metadata, allow_pickle=True)
    return root


def test_things_root_uses_concept_folder_names(tmp_path):
    pytest.importorskip("ttdnet.data.things_eeg2")
    rng = np.random.default_rng(3)
    concepts = ["00001_aircraft_carrier", "00002_antelope", "00003_backscratcher"]
    root = make_things_root(tmp_path / "things", concepts, rng)
    for concept in reversed(concepts):
        write_image(tmp_path / "rec" / f"{concept}_s0.png", smooth_image(rng, 24))
    pairs = pair_images(root, tmp_path / "rec")
    assert pairs.trial_ids == concepts
    assert pairs.gt_paths[0].as_posix().endswith("test_images/00001_aircraft_carrier/aircraft_carrier_01b.jpg")
    assert pairs.source["ground_truth_kind"] == "things-eeg2 test_images"
    (tmp_path / "rec" / "00002_antelope_s0.png").unlink()
    with pytest.raises(TtdnetError, match="00002_antelope"):
        pair_images(root / "image_set", tmp_path / "rec")
