"""Interactive views for Jupyter and Colab (ipywidgets); chapter 05.

A rendered page cannot run a kernel, so each widget's chapter also draws a static figure of the
same view.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .plots import plot_threshold_rows


def threshold_explorer(scores, labels, images, value_range: str, captions=None, initial=None):
    """A slider over thresholds that redraws :func:`plot_threshold_rows` (Jupyter, Colab)."""
    import ipywidgets as widgets
    from IPython.display import display

    scores = np.asarray(scores)
    slider = widgets.FloatSlider(
        value=float(np.median(scores)) if initial is None else float(initial),
        min=float(scores.min()), max=float(scores.max()), step=float(np.ptp(scores)) / 200,
        description="threshold", continuous_update=False, readout_format=".4g",
        layout=widgets.Layout(width="60%"))
    output = widgets.Output()

    def redraw(_change=None):
        with output:
            output.clear_output(wait=True)
            display(plot_threshold_rows(scores, labels, images, {"slider": slider.value},
                                        value_range, captions))
            plt.close("all")

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, output])
