"""The retrain ladder (tasks/ladder.py): each rung adds to those below it; the next rung follows the last retrain;
the best submitted CV, restarted by a new data version; only a better CV is worth a submission."""

from tasks.config import Config, TrainConfig
from tasks.ladder import beats, best_submitted, climbed, next_rung, rung_name


def test_each_rung_adds_to_the_ones_below():
    base = Config(seed=3, time_limit=10.0, train=TrainConfig(epochs=10, finetune_epochs=4, finetune_folds=1))
    assert climbed(base, 0) == base
    assert climbed(base, 1).seed == 4 and climbed(base, 1).train == base.train
    bigger = climbed(base, 2)
    assert (bigger.seed, bigger.time_limit, bigger.train.epochs, bigger.train.finetune_epochs) == (4, 15.0, 15, 6)
    assert climbed(base, 3).train.finetune_folds == 2 and climbed(base, 3).time_limit == 15.0
    assert climbed(base, 5).seed == 6 and climbed(base, 5).train.finetune_folds == 2  # above the top: seeds
    assert rung_name(5) == "everything above, seed +3"
    assert climbed(Config(folds=2, train=TrainConfig(finetune_folds=2)), 3).train.finetune_folds == 2  # capped


def test_the_next_rung_and_the_best_submitted_cv():
    assert next_rung([], new_data=False) == 0
    history = [{"rung": 0, "cv": 0.90, "submitted": True}, {"action": "none"}, {"rung": 1, "cv": 0.92,
                                                                               "submitted": False}]
    assert next_rung(history, new_data=False) == 2 and next_rung(history, new_data=True) == 0
    assert best_submitted(history, "accuracy") == 0.90
    assert best_submitted([*history, {"rung": 0, "new_data": True, "cv": 0.5, "submitted": True}], "accuracy") == 0.5
    assert best_submitted([{"rung": 0, "cv": 0.3, "submitted": True}, {"rung": 1, "cv": 0.2, "submitted": True}],
                          "log_loss") == 0.2
    assert beats(0.91, 0.90, "accuracy") and not beats(0.90, 0.90, "accuracy") and beats(0.2, 0.3, "log_loss")
    assert beats(0.5, None, "accuracy") and not beats(None, 0.5, "accuracy")
