"""Shared input checks (lowrank._validation): every entry point names the bad argument."""

import numpy as np
import pytest
import torch

from lowrank._validation import check_float_dtype, check_int, check_real, check_seed
from lowrank.analysis import cosine, geometric_margin
from lowrank.kernels import pairwise_logistic
from lowrank.theory import cross_entropy_limit, max_margin_separator
from lowrank.train import calibrate_bias, fit_linear

X2 = [[3.0, 1.0], [5.0, 1.0]]
Y2 = [-1, 1]
CX = np.array(X2) + 1j * np.array([[0.0, 2.0], [0.0, 0.0]])  # a real copy would drop 2j


@pytest.mark.parametrize("call", [
    lambda X: fit_linear(X, Y2, steps=1),
    lambda X: max_margin_separator(X, Y2),
    lambda X: cross_entropy_limit(X, Y2),
    lambda X: geometric_margin([1.0, 0.0], -4.0, X, Y2),
    lambda X: calibrate_bias([1.0, 0.0], X, Y2),
])
@pytest.mark.parametrize("as_torch", [False, True])
def test_complex_X_is_refused_everywhere(call, as_torch):
    X = torch.from_numpy(CX) if as_torch else CX
    with pytest.raises(ValueError, match="X must be real-valued, got complex dtype"):
        call(X)


def test_complex_vectors_and_labels_are_refused():
    with pytest.raises(ValueError, match="w must be real-valued"):
        geometric_margin(np.array([1.0, 1j]), -4.0, X2, Y2)
    with pytest.raises(ValueError, match="y must be real-valued"):
        geometric_margin([1.0, 0.0], -4.0, X2, np.array([-1, 1], dtype=complex))
    with pytest.raises(ValueError, match="u must be real-valued"):
        cosine(torch.tensor([1.0 + 1j, 0.0]), [1.0, 0.0])


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
@pytest.mark.parametrize("which", ["pos_scores", "neg_scores"])
def test_pairwise_logistic_refuses_integer_and_bool_scores(dtype, which):
    good = torch.tensor([0.5, -1.0])
    bad = torch.tensor([1, 0], dtype=dtype)
    args = (bad, good) if which == "pos_scores" else (good, bad)
    with pytest.raises(ValueError, match=f"{which} must have a dtype in .*got {dtype}"):
        pairwise_logistic(*args)


def test_scalar_checks():
    assert check_int(7, "n") == 7 and check_int(np.int64(7), "n") == 7 and check_int(1e3, "n") == 1000
    assert check_real(np.float32(0.5), "lr") == 0.5 and check_real(torch.tensor(2.0), "lr") == 2.0
    for bad, err in [(float("inf"), ValueError), (float("nan"), ValueError), (2.5, ValueError),
                     ("3", TypeError), (True, TypeError), (None, TypeError), (1 + 0j, TypeError)]:
        with pytest.raises(err, match="n must be"):
            check_int(bad, "n", minimum=1)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        check_int(0, "n", minimum=1)
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got 0"):
        check_real(0, "lr", minimum=0.0, strict=True)
    assert check_seed(None) is None and check_seed(np.uint32(5)) == 5 and check_seed(-1) == -1
    with pytest.raises(ValueError, match="seed must lie in"):
        check_seed(2 ** 64)
    assert check_float_dtype(np.dtype("float16")) == torch.float16
    assert check_float_dtype("double") == torch.float64
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        check_float_dtype(None)
