"""Cart and purchase signals: the type weightings a model family tries, and the one chosen on validation.

Where the data have event types (Taobao, a shop's export), a `-typed` model weighs them: session kNN multiplies a
neighbour's item by what its session did with it (baselines.VSKNN `type_weights`), a neural model weighs each
training target by its kind in the loss (train.TrainConfig `cart_weight`, `purchase_weight`). Which weighting
helps is the data's to say, so each candidate below is scored on validation (fitted on the fitting sessions)
and the best is kept; the plain weighting is a candidate, so a typed model is never worse on validation than its
plain family. The evaluation reports both, which is the gain or loss the types bring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from streamrec.training.baselines import PLAIN_WEIGHTS, VSKNN
from streamrec.training.metrics import all_prefixes, rank_prefixes, summarize
from streamrec.training.protocol import Split

# (views and clicks, carts, purchases): plain; carts and purchases worth less (they mostly repeat the item just
# viewed), or much less; worth more; purchases worth most
CANDIDATES: tuple[tuple[float, float, float], ...] = (
    PLAIN_WEIGHTS,
    (1.0, 0.5, 0.5),
    (1.0, 0.25, 0.25),
    (1.0, 2.0, 2.0),
    (1.0, 2.0, 4.0),
)
TYPED_KNN = "v-sknn-typed"
# a typed model -> the family it weighs
TYPED_MODELS = {TYPED_KNN: "v-sknn", "gru4rec-typed": "gru4rec", "sasrec-typed": "sasrec"}
NO_SIGNALS = "the training sessions hold no cart or purchase events, so there is nothing to weigh"


@dataclass(frozen=True)
class Choice:
    weights: tuple[float, float, float]
    valid: dict[str, float]  # the chosen weighting's validation figures
    tried: dict[str, float]  # each candidate's validation MRR@20, keyed "views/carts/purchases"


def _key(weights: tuple[float, float, float]) -> str:
    return "/".join(f"{w:g}" for w in weights)


def _best(figures: dict[tuple[float, float, float], dict[str, float]]) -> Choice:
    best = max(CANDIDATES, key=lambda w: (figures[w]["mrr@20"], figures[w]["hr@20"], w == PLAIN_WEIGHTS))
    return Choice(best, figures[best], {_key(w): f["mrr@20"] for w, f in figures.items()})


def choose_knn_weights(split: Split, **knn_settings: Any) -> Choice:
    """The candidate with the best validation MRR@20 for V-SKNN fitted on the fitting sessions."""
    valid = all_prefixes(split.valid)
    figures = {}
    for weights in CANDIDATES:
        knn = VSKNN(type_weights=weights, **knn_settings).fit(split.fit, len(split.vocab), split.fit_kinds)
        figures[weights] = summarize(rank_prefixes(knn.score, valid).ranks)
    return _best(figures)


def choose_neural_weights(cfg: Any, split: Split, log: Callable[[str], None] = lambda _: None) -> tuple[Any, Choice]:
    """`cfg` (a train.TrainConfig) with the candidate whose run on the fitting sessions (early stopping on
    validation, as train.fit does) reached the best validation MRR@20; and the choice."""
    from streamrec.training.models import build_model
    from streamrec.training.train import fit, seed_everything

    valid = all_prefixes(split.valid)
    figures = {}
    for weights in CANDIDATES:
        candidate = with_weights(cfg, weights)
        seed_everything(candidate.seed)
        model = build_model(candidate.model, candidate.model_args(len(split.vocab)))
        history = fit(model, split.fit, candidate, valid, kinds=split.fit_kinds)
        figures[weights] = history.valid[history.best_epoch - 1]
        log(f"  {cfg.model} type weights {_key(weights)}: validation {figures[weights]}")
    choice = _best(figures)
    return with_weights(cfg, choice.weights), choice


def with_weights(cfg: Any, weights: tuple[float, float, float]) -> Any:
    """A train.TrainConfig weighing carts and purchases as `weights` do, against views and clicks."""
    return replace(cfg, cart_weight=weights[1] / weights[0], purchase_weight=weights[2] / weights[0])


def report(choice: Choice) -> dict[str, Any]:
    """What an evaluation says of a choice."""
    return {"type_weights": list(choice.weights), "type_weights_tried": choice.tried}
