"""The study's figures for an audit (issue 8), as matplotlib ``Figure`` objects drawn without pyplot.

Each function takes an ``AuditResult`` (plus the task where the figure runs models) and returns a new
``matplotlib.figure.Figure``; nothing touches pyplot's global state or needs a display. Groups keep one colour
across every figure of an audit (training blue, generated red, as in the study)::

    from weightmem_fast import plots

    fig = plots.min_l2_histogram(result)                 # study_spec §2.1
    fig.savefig("min_l2.png")
    fig = plots.similarity_scatter(result)               # §2.4 / §5.3, with the noise frontier
    fig = plots.decision_boundaries(result, task, grid=100)   # §2.7, classifier audits
    for name, fig in plots.figures(result, task, grid=100).items():   # every figure that applies
        png = plots.figure_png(fig)                      # bytes, e.g. for the HTML report

| function | study | shows |
|---|---|---|
| ``min_l2_histogram`` | §2.1 | % of each group's models per bin of min L2 to training |
| ``similarity_scatter`` | §2.4, §5.3 | similarity to training vs quality, and the noise frontier |
| ``weight_heatmap`` | §2.2 | models beside their k nearest training models on random parameters |
| ``decision_boundaries`` | §2.7 | decision regions on the test inputs' PCA plane (``pca_grid``) |
| ``shape_renders`` | §5.3 | field audits: generated clouds beside their nearest training shapes |
| ``tsne`` | §2.8 | t-SNE of weights by group |
| ``parameter_densities`` | §2.8 | value densities of random parameters by group |
"""
from ._common import group_colors, random_subset
from .collect import figure_png, figures
from .decision import decision_boundaries, decision_predictions, pca_grid
from .densities import parameter_densities
from .embedding import tsne
from .heatmap import weight_heatmap
from .histogram import histogram_percent, min_l2_histogram
from .scatter import similarity_scatter
from .shapes import shape_renders

__all__ = ["decision_boundaries", "decision_predictions", "figure_png", "figures", "group_colors",
           "histogram_percent", "min_l2_histogram", "parameter_densities", "pca_grid", "random_subset",
           "shape_renders", "similarity_scatter", "tsne", "weight_heatmap"]
