"""Every quantity of every architecture has a module group, an equation and a kind the window can show."""

from __future__ import annotations

import pytest

from mimviewer.nets import create_model, list_models
from mimviewer.quantities import display_name, equation, group_of, grouped, tooltip


@pytest.mark.parametrize("arch", list_models())
def test_every_recorded_quantity_has_a_group_and_an_equation(arch):
    hidden = (4, 4, 4) if arch == "predrnn_pp" else (4, 4)
    model = create_model(arch, num_hidden=hidden, filter_size=3, patch_size=2, height=8, width=8)
    for layer in range(model.config.num_layers):
        names = [*model.quantities(layer), "dH"]
        for name in names:
            assert group_of(name) != "other", (arch, name)
            assert equation(arch, layer, name), (arch, layer, name)
            assert display_name(name) in tooltip(arch, layer, name)
        groups = grouped(names)
        assert sorted(n for _, members in groups for n in members) == sorted(names)
        assert len({g for g, _ in groups}) == len(groups)  # each module once, its columns together


def test_mim_names_follow_the_paper_where_it_names_them():
    assert display_name("Dn") == "D"  # the paper's D is MIM-N's output
    assert "code" in equation("mim", 1, "N.i")  # where the official code differs, the tooltip says so
    assert equation("mim", 0, "f").startswith("f = σ") and "T" in equation("mim", 1, "C")
    assert "code" not in equation("mim_paper", 1, "N.i") and "W_no ∗ N" in equation("mim_paper", 1, "N.o")
    assert [g for g, _ in grouped(["H", "S", "N.f", "f", "dH", "Dn"])] == [
        "cell: C path",
        "cell: output",
        "MIM-N",
        "MIM-S",
        "change",
    ]
