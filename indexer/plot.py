"""A picture of how a model separates the held-out phrases (PCA to two dimensions)."""

from __future__ import annotations

from pathlib import Path

from .embedder import load_embedder
from .errors import FoodvecError
from .evaluate import label_margin, load_labelled, pca_2d


def plot_pair(tuned: str, base: str, heldout: Path, out: Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FoodvecError("--plot needs matplotlib: pip install 'foodvec[plot]'") from None
    texts, labels = load_labelled(heldout)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (title, spec) in zip(axes, (("base", base), ("tuned", tuned)), strict=True):
        emb = load_embedder(spec, encoder="torch").encode(texts)
        xy = pca_2d(emb)
        for lab, colour, name in ((1, "tab:green", "healthy (1)"), (0, "tab:red", "unhealthy (0)")):
            m = labels == lab
            ax.scatter(xy[m, 0], xy[m, 1], c=colour, label=name, s=22, alpha=0.8)
        ax.set_title(f"{title}: label margin {label_margin(emb, labels):.2f}")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(loc="best")
    fig.suptitle(f"Held-out phrases ({len(texts)}), PCA of the embeddings")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
