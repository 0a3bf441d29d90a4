import pytest
import torch

from lie_sweep import SHAPE_ATTRIBUTES, ExampleIndexError, SyntheticShapes, stack_examples
from lie_sweep.celeba import CelebA
from lie_sweep.errors import ConfigError


def test_items_are_deterministic_and_independent_of_access_order():
    a, b = SyntheticShapes(50, 24, seed=3), SyntheticShapes(50, 24, seed=3)
    x1, y1 = a[17]
    for k in range(10):  # touching other items changes nothing
        b[k]
    x2, y2 = b[17]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(SyntheticShapes(50, 24, seed=4)[17][0], x1)
    assert x1.shape == (3, 24, 24) and x1.dtype == torch.float32
    assert 0.0 <= x1.min() and x1.max() <= 1.0


def test_attributes_have_mutually_exclusive_groups_and_vary():
    ds = SyntheticShapes(400, 16)
    y = torch.stack([ds[k][1] for k in range(len(ds))])
    assert y.shape == (400, len(SHAPE_ATTRIBUTES)) and 8 <= len(SHAPE_ATTRIBUTES) <= 16
    assert torch.all(y[:, 0:3].sum(1) == 1)   # shape
    assert torch.all(y[:, 3:6].sum(1) == 1)   # colour
    frac = y.mean(0)
    assert torch.all(frac > 0.1) and torch.all(frac < 0.9)


def test_attributes_match_pixels():
    ds = SyntheticShapes(200, 32)
    for k in range(200):
        x, y = ds[k]
        if y[11] == 0:  # noise-free: background colour decides Dark_Background
            corner = x[:, 0, 0]
            assert (corner.mean() < 0.5) == bool(y[9])


def test_stack_examples_and_out_of_range_index():
    ds = SyntheticShapes(10, 16)
    x, y = stack_examples(ds, [3, 1, 4])
    assert x.shape == (3, 3, 16, 16) and y.shape == (3, 12)
    assert torch.equal(x[1], ds[1][0])
    with pytest.raises(ExampleIndexError) as info:
        stack_examples(ds, [3, 10])
    assert "\n" not in str(info.value) and "found 10" in str(info.value)


def _fake_celeba(root, n=6):
    Image = pytest.importorskip("PIL.Image")
    names = [f"A{k}" for k in range(40)]
    (root / "img_align_celeba").mkdir(parents=True)
    rows = []
    for k in range(n):
        img = Image.new("RGB", (178, 218), (40 * k, 10, 200))
        img.save(root / "img_align_celeba" / f"{k:06d}.jpg")
        rows.append(f"{k:06d}.jpg " + " ".join("1" if (a + k) % 3 == 0 else "-1" for a in range(40)))
    (root / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(names) + "\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(f"{k:06d}.jpg {k % 3}" for k in range(n)) + "\n")


def test_celeba_reader_on_a_local_copy(tmp_path):
    _fake_celeba(tmp_path)
    ds = CelebA(tmp_path, image_size=16)
    assert len(ds) == 6 and ds.attribute_names[0] == "A0" and len(ds.attribute_names) == 40
    x, y = ds[1]
    assert x.shape == (3, 16, 16) and y.shape == (40,)
    assert y[2] == 1 and y[0] == 0
    assert abs(x[2].mean().item() - 200 / 255) < 0.05
    assert len(CelebA(tmp_path, split="valid", image_size=16)) == 2


def test_celeba_missing_root_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        CelebA(tmp_path / "nowhere")
    assert "\n" not in str(info.value) and "data.root" in str(info.value)


def test_local_text_sequences_by_bytes_and_by_a_saved_tokenizer(tmp_path):
    """data=text: a folder of text cut into sequences, tokens as UTF-8 bytes or from a tokenizer saved locally."""
    from lie_sweep.text import TextSequences, python_docs

    (tmp_path / "a.txt").write_text("the cat sat on the mat. " * 8)
    (tmp_path / "b.md").write_text("a dog ran. " * 8)
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    data = TextSequences(str(tmp_path), seq_len=16)
    ids, labels = data[0]
    assert ids.dtype == torch.long and torch.equal(ids, labels) and "".join(data.decode(ids)) == "the cat sat on t"
    assert len(data) == len(("the cat sat on the mat. " * 8 + "\n\n" + "a dog ran. " * 8).encode()) // 16
    assert python_docs() == python_docs() and len(python_docs()) > 100_000   # the same text, every time
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["the cat sat on the mat . a dog ran ."],
                            trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(tmp_path / "tok"))
    words = TextSequences(str(tmp_path / "a.txt"), seq_len=4, tokenizer=str(tmp_path / "tok"))
    assert [w.strip() for w in words.decode(words[0][0])] == ["the", "cat", "sat", "on"] and words.vocab_size > 8


def test_a_local_hf_dataset_and_an_image_folder(tmp_path):
    pytest.importorskip("datasets")
    import datasets
    from PIL import Image

    from lie_sweep.folders import ImageFolder, LocalHFDataset
    from lie_sweep.tasks import CausalLM, Classification

    rows = {"input_ids": [[1, 2, 3, 4], [5, 6, 7, 0]], "attention_mask": [[1, 1, 1, 1], [1, 1, 1, 0]]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    data = LocalHFDataset(path=str(tmp_path / "ds"), label=None)
    x, y = CausalLM().item(data[1])
    assert x.tolist() == [5, 6, 7, 0] and y.tolist() == [5, 6, 7, -100]      # the mask's zero: an ignored label
    (tmp_path / "rows.jsonl").write_text('{"x": [0.5, 1.0], "y": 1}\n{"x": [2.0, -1.0], "y": 0}\n')
    table = LocalHFDataset(files=str(tmp_path / "rows.jsonl"), input="x", label="y")
    assert Classification().item(table[0])[0].tolist() == [0.5, 1.0] and int(table[1][1]) == 0
    for name, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / "img" / name).mkdir(parents=True)
        Image.new("RGB", (12, 10), colour).save(tmp_path / "img" / name / "0.png")
    images = ImageFolder(str(tmp_path / "img"), image_size=8)
    image, label = images[1]
    assert images.class_names == ("cat", "dog") and image.shape == (3, 8, 8) and int(label) == 1
    assert float(image[2].mean()) == 1.0 and float(image[0].mean()) == 0.0
