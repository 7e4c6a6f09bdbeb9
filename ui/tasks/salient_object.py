"""Salient objects: the predicted salient region, and the model's own output beside a model-free
reference (the method featured as "reference")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import resources, results, state

from .base import TaskUI, register
from .segmentation import mask_label

if TYPE_CHECKING:
    from ui.display import Display
    from ui.view import View


@register
class SalientObjectUI(TaskUI):
    task = "salient_object"
    picker_title = "Salient region"

    def picker_help(self, n: int) -> str:
        return (
            "The region the model predicts as salient (probability above 0.5), summed over: its share of "
            "the image, and p: its mean probability."
        )

    def target_label(self, target: sc.Target, rank: int) -> str:
        return mask_label(target, "region") if target.mask is not None else super().target_label(target, rank)

    def picture_caption(self, n: int) -> str:
        return "The predicted salient region"

    def nothing_predicted(self, threshold: float, weights: str) -> str:
        return (
            "The model predicts no salient region on this image (no pixel with probability above 0.5): "
            "there is nothing to explain."
        )

    def extra_panel(self, view: View, shown: Display) -> None:
        """The model's salient-object probability beside a model-free reference map."""
        from ui.view import model_saliency, prediction_picture

        featured = resources.featured("reference", view.task)
        reference = resources.method(featured[0]) if featured else None
        if reference is None:
            return
        st.subheader("The model's saliency and a classical reference")
        found = results.lookup(view, reference, {})
        if found is None:
            jobs = [(reference.title, reference, {})]
            found = results.run_with_progress(view, jobs, state.REFERENCE_PENDING)[0]
        probability = model_saliency(view)
        region, model_map, classical = st.columns(3, gap="medium")
        region.image(prediction_picture(view), caption="The predicted salient region", width="stretch")
        model_map.image(
            viz.apply_colormap(probability, shown.cmap),
            caption=f"{view.info.title}: salient-object probability, {probability.min():.2f} … "
            f"{probability.max():.2f} (its output, not an explanation)",
            width="stretch",
        )
        if found is not None:
            paper = reference.reference.split(",")[0]
            classical.image(
                viz.apply_colormap(viz.normalise(found.map, "positive", shown.clip), shown.cmap),
                caption=f"{reference.title} ({paper}): model-free saliency, a classical reference",
                width="stretch",
            )
        st.caption(
            f"The model's probability is drawn on a fixed 0 … 1 scale; the {reference.title.lower()} is "
            "stretched to its own range. The explanations above say which pixels drive the model's region; "
            "these say what the model and a model-free detector of 'unexpected' image content call salient."
        )
