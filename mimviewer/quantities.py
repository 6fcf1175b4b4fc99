"""What each recorded quantity is: its module, its equation, its name in the papers.

The window groups the internals grid by module and shows each quantity's equation as a
tooltip; this is the one place that says what the names mean (``trace.QUANTITIES`` has
the one-line descriptions). Notation: ``∗`` convolution, ``⊙`` elementwise product,
``σ`` sigmoid; ``x`` the layer's input, ``H₋`` the layer's previous H (and so on).

MIM's names follow the paper (Wang et al. 2019) where it names a thing: its D is MIM-N's
*output* (key ``Dn``); MIM-N's input, the difference of the hidden states below, has no
letter in the paper (key ``D``, shown as ΔH↓). Where the official code (which OpenSTL and
mimviewer follow) differs from the paper's equations, the tooltip says so.
"""

from __future__ import annotations

from mimviewer.trace_spec import QUANTITIES, quantity_kind

# Column groups of the internals grid, in display order: (group, quantities in order).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cell: C path", ("i", "f", "g", "C")),
    ("cell: M path", ("i'", "f'", "g'", "M")),
    ("cell: output", ("o", "H", "P")),
    ("E3D recall", ("r", "R")),
    ("GHU", ("Z.p", "Z.u", "Z")),
    ("MIM-N", ("D", "N.i", "N.f", "N.g", "N.o", "N", "Dn")),
    ("MIM-S", ("S.i", "S.f", "S.g", "S.o", "S", "T")),
    ("change", ("dH",)),
)

# Names shown in the window where the MIM paper names a thing differently from the key.
PAPER_NAMES: dict[str, str] = {"Dn": "D", "D": "ΔH↓"}

# Units of the values (all are dimensionless model activations; fractions are shares in [0, 1]).
UNITS: dict[str, str] = {"gate": "gate value, 0…1", "state": "activation", "change": "change per step"}

_CELL_EQUATIONS: dict[str, dict[str, str]] = {
    "convlstm": {
        "i": "i = σ(W_xi ∗ x + W_hi ∗ H₋)",
        "f": "f = σ(W_xf ∗ x + W_hf ∗ H₋)   (no forget bias, OpenSTL ≥ 1.0; peephole option: + W_cf ⊙ C₋)",
        "g": "g = tanh(W_xg ∗ x + W_hg ∗ H₋)",
        "o": "o = σ(W_xo ∗ x + W_ho ∗ H₋)",
        "C": "C = f ⊙ C₋ + i ⊙ g",
        "H": "H = o ⊙ tanh(C)",
    },
    "stlstm": {
        "i": "i = σ(W_xi ∗ x + W_hi ∗ H₋)",
        "f": "f = σ(W_xf ∗ x + W_hf ∗ H₋ + 1)",
        "g": "g = tanh(W_xg ∗ x + W_hg ∗ H₋)",
        "C": "C = f ⊙ C₋ + i ⊙ g",
        "i'": "i' = σ(W'_xi ∗ x + W_mi ∗ M₋)",
        "f'": "f' = σ(W'_xf ∗ x + W_mf ∗ M₋ + 1)",
        "g'": "g' = tanh(W'_xg ∗ x + W_mg ∗ M₋)",
        "M": "M = f' ⊙ M₋ + i' ⊙ g'   (M₋: from the layer below; layer 0: the top's, previous step)",
        "o": "o = σ(W_xo ∗ x + W_ho ∗ H₋ + W_co ∗ [C, M])",
        "H": "H = o ⊙ tanh(W_1×1 ∗ [C, M])",
    },
    "causal": {
        "i": "i = σ(W_xi ∗ x + W_hi ∗ H₋ + W_ci ∗ C₋)",
        "f": "f = σ(W_xf ∗ x + W_hf ∗ H₋ + W_cf ∗ C₋ + 1)",
        "g": "g = tanh(W_xg ∗ x + W_hg ∗ H₋ + W_cg ∗ C₋)",
        "C": "C = f ⊙ C₋ + i ⊙ g",
        "i'": "i' = σ(W'_xi ∗ x + W_mi ∗ M₋ + W'_ci ∗ C)",
        "f'": "f' = σ(W'_xf ∗ x + W_mf ∗ M₋ + W'_cf ∗ C + 1)",
        "g'": "g' = tanh(W'_xg ∗ x + W'_cg ∗ C)",
        "M": "M = f' ⊙ tanh(W_mm ∗ M₋) + i' ⊙ g'",
        "o": "o = tanh(W_xo ∗ x + W_ho ∗ H₋ + W_co ∗ C + W_mo ∗ M)   (tanh: a state in [-1, 1], not a gate)",
        "H": "H = o ⊙ tanh(W_1×1 ∗ [C, M])",
        "Z.p": "p = tanh(W_xp ∗ H¹ + W_zp ∗ Z₋)",
        "Z.u": "u = σ(W_xu ∗ H¹ + W_zu ∗ Z₋)",
        "Z": "Z = u ⊙ p + (1 − u) ⊙ Z₋   (read by layer 2 instead of H¹)",
    },
    "mim_block": {
        "i": "i = σ(W_xi ∗ x + W_hi ∗ H₋)",
        "g": "g = tanh(W_xg ∗ x + W_hg ∗ H₋)",
        "C": "C = T + i ⊙ g   (MIM-S's T replaces f ⊙ C₋)",
        "i'": "i' = σ(W'_xi ∗ x + W_mi ∗ M₋)",
        "f'": "f' = σ(W'_xf ∗ x + W_mf ∗ M₋ + 1)",
        "g'": "g' = tanh(W'_xg ∗ x + W_mg ∗ M₋)",
        "M": "M = f' ⊙ M₋ + i' ⊙ g'",
        "o": "o = σ(W_xo ∗ x + W_ho ∗ H₋ + W_mo ∗ M₋)   (code: o reads M₋ by conv, not C, M)",
        "H": "H = o ⊙ tanh(W_1×1 ∗ [C, M])",
        "D": "ΔH↓ = H↓ − H↓₋ (first MIM-N); code: the output D of the MIM-N below for higher ones",
        "N.i": "i_N = σ(W ∗ ΔH↓ + W ∗ D₋ + w_ic ⊙ N₋)   (paper: W ∗ N₋; code: conv of D₋ + peephole)",
        "N.f": "f_N = σ(W ∗ ΔH↓ + W ∗ D₋ + w_fc ⊙ N₋ + 1)",
        "N.g": "g_N = tanh(W ∗ ΔH↓ + W ∗ D₋)",
        "N.o": "o_N = σ(W ∗ ΔH↓ + W ∗ D₋ + w_oc ⊙ N)",
        "N": "N = f_N ⊙ N₋ + i_N ⊙ g_N   (MIM-N memory: non-stationary)",
        "Dn": "D = o_N ⊙ tanh(N)   (the paper's D: MIM-N's output)",
        "S.i": "i_S = σ(W ∗ D + W ∗ C₋ + w_ic ⊙ S₋)   (code: peephole on S₋)",
        "S.f": "f_S = σ(W ∗ D + W ∗ C₋ + w_fc ⊙ S₋ + 1)",
        "S.g": "g_S = tanh(W ∗ D + W ∗ C₋)",
        "S.o": "o_S = σ(W ∗ D + W ∗ C₋ + w_oc ⊙ S)",
        "S": "S = f_S ⊙ S₋ + i_S ⊙ g_S   (MIM-S memory: stationary)",
        "T": "T = o_S ⊙ tanh(S)   (replaces the forget path of C)",
    },
    "mim_paper_block": {
        "i": "i = σ(W_xi ∗ x + W_hi ∗ H₋)",
        "g": "g = tanh(W_xg ∗ x + W_hg ∗ H₋)",
        "C": "C = T + i ⊙ g   (MIM-S's T replaces f ⊙ C₋)",
        "i'": "i' = σ(W'_xi ∗ x + W_mi ∗ M₋)   (own input convolution, the paper's)",
        "f'": "f' = σ(W'_xf ∗ x + W_mf ∗ M₋ + 1)",
        "g'": "g' = tanh(W'_xg ∗ x + W_mg ∗ M₋)",
        "M": "M = f' ⊙ M₋ + i' ⊙ g'",
        "o": "o = σ(W_xo ∗ x + W_ho ∗ H₋ + W_co ∗ C + W_mo ∗ M)",
        "H": "H = o ⊙ tanh(W_1×1 ∗ [C, M])",
        "D": "ΔH↓ = H↓ − H↓₋   (every MIM-N reads its own layer below; at t = 0, H↓₋ = 0)",
        "N.i": "i_N = σ(W ∗ ΔH↓ + W ∗ N₋)",
        "N.f": "f_N = σ(W ∗ ΔH↓ + W ∗ N₋ + 1)",
        "N.g": "g_N = tanh(W ∗ ΔH↓ + W ∗ N₋)",
        "N.o": "o_N = σ(W ∗ ΔH↓ + W_no ∗ N)",
        "N": "N = f_N ⊙ N₋ + i_N ⊙ g_N   (MIM-N memory: non-stationary)",
        "Dn": "D = o_N ⊙ tanh(N)   (the paper's D: MIM-N's output)",
        "S.i": "i_S = σ(W ∗ D + W ∗ C₋)",
        "S.f": "f_S = σ(W ∗ D + W ∗ C₋ + 1)",
        "S.g": "g_S = tanh(W ∗ D + W ∗ C₋)",
        "S.o": "o_S = σ(W ∗ D + W ∗ C₋ + W_so ∗ S)",
        "S": "S = f_S ⊙ S₋ + i_S ⊙ g_S   (MIM-S memory: stationary)",
        "T": "T = o_S ⊙ tanh(S)   (replaces the forget path of C)",
    },
    "e3d": {
        "i": "i = σ(W_xi ∗ x + W_hi ∗ H₋)   (3-D convs over the clip)",
        "r": "r = σ(W_xr ∗ x + W_hr ∗ H₋)   (recall gate: the attention query)",
        "g": "g = tanh(W_xg ∗ x + W_hg ∗ H₋)",
        "R": "R = softmax(r · Cₕᵢₛₜᵀ) · Cₕᵢₛₜ   (recall of the layer's past C)",
        "C": "C = LayerNorm(C₋ + R) + i ⊙ g",
        "i'": "i' = σ(W'_xi ∗ x + W_mi ∗ M₋)",
        "f'": "f' = σ(W'_xf ∗ x + W_mf ∗ M₋ + 1)",
        "g'": "g' = tanh(W'_xg ∗ x + W_mg ∗ M₋)",
        "M": "M = f' ⊙ tanh(W_mm ∗ M₋) + i' ⊙ g'",
        "o": "o = σ(tanh(W_xo ∗ x + W_ho ∗ H₋ + W_co ∗ C + W_mo ∗ M))",
        "H": "H = o ⊙ tanh(W_1×1 ∗ [C, M])",
    },
    "lstm": {
        "i": "i = σ(W_xi x + W_ri r₋ + b_i)",
        "f": "f = σ(W_xf x + W_rf r₋ + b_f + 1)   (peephole option: + w_cf ⊙ C₋)",
        "g": "g = tanh(W_xg x + W_rg r₋ + b_g)",
        "o": "o = σ(W_xo x + W_ro r₋ + b_o)",
        "C": "C = f ⊙ C₋ + i ⊙ g",
        "H": "H = o ⊙ tanh(C)",
        "P": "P = W_rm H   (LSTMP: the recurrent state r)",
    },
    "sru": {
        "g": "g = W x   (candidate, linear)",
        "f": "f = σ(W_f x + v_f ⊙ C₋ + b_f)",
        "C": "C = f ⊙ C₋ + (1 − f) ⊙ g",
        "r": "r = σ(W_r x + v_r ⊙ C₋ + b_r)",
        "H": "H = r ⊙ C + (1 − r) ⊙ x",
    },
}
_ARCH_CELLS: dict[str, str] = {
    "convlstm": "convlstm",
    "predrnn": "stlstm",
    "predrnn_v2": "stlstm",
    "predrnn_pp": "causal",
    "e3d_lstm": "e3d",
    "lstm": "lstm",
    "lstmp": "lstm",
    "sru": "sru",
}
DH_EQUATION = "dH = H − H₋   (H at the layer's previous computed step; H starts at 0)"


def display_name(name: str) -> str:
    """The name the window shows (the MIM paper's where it differs from the key)."""
    return PAPER_NAMES.get(name, name)


def group_of(name: str) -> str:
    for group, names in GROUPS:
        if name in names:
            return group
    return "other"


def grouped(names: list[str]) -> list[tuple[str, list[str]]]:
    """``names`` ordered and grouped by module, as the grid shows them (unknown names last)."""
    order = [n for _, members in GROUPS for n in members]
    rank = {n: i for i, n in enumerate(order)}
    ordered = sorted(names, key=lambda n: (rank.get(n, len(order)), names.index(n)))
    groups: list[tuple[str, list[str]]] = []
    for name in ordered:
        group = group_of(name)
        if groups and groups[-1][0] == group:
            groups[-1][1].append(name)
        else:
            groups.append((group, [name]))
    return groups


def equation(arch: str, layer: int, name: str) -> str:
    """The equation of ``name`` in ``arch`` (MIM: layer 0 is an ST-LSTM, higher ones MIM blocks)."""
    if name == "dH":
        return DH_EQUATION
    cell = _ARCH_CELLS.get(arch)
    if arch.startswith("mim"):  # mim: the official code; mim_paper: the paper's equations
        cell = "stlstm" if layer == 0 else "mim_paper_block" if arch == "mim_paper" else "mim_block"
    return _CELL_EQUATIONS.get(cell or "", {}).get(name, "")


def tooltip(arch: str, layer: int, name: str, kind: str | None = None) -> str:
    """Name, description, equation and the measure that applies: the grid's tooltip text."""
    kind = kind or quantity_kind(name)
    shown = display_name(name)
    head = f"{shown} ({name})" if shown != name else name
    lines = [f"{head}: {QUANTITIES.get(name, name)}"]
    formula = equation(arch, layer, name)
    if formula:
        lines.append(formula)
    lines.append(f"kind: {kind} ({UNITS[kind]})")
    return "\n".join(lines)
