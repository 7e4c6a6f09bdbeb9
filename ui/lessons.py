"""What the Learn page says about each method: what it computes (with a formula), what its parameters do,
what it costs, and the known pitfalls. Plain data; the page renders it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lesson:
    computes: str  # markdown
    formula: str  # LaTeX for st.latex
    cost: str
    pitfalls: tuple[str, ...]
    params: dict[str, str] = field(default_factory=dict)  # name -> what changing it does (beyond the help)
    compare_with: str | None = None  # a method to show beside it (e.g. the Sobel reference)
    paper: str = ""


_GRADIENT_NOTE = (
    "Its sign mostly follows the pixel colours, so the magnitude (sign: absolute) is usually shown."
)

LESSONS: dict[str, Lesson] = {
    "gradient": Lesson(
        computes="How much the target score would change if each pixel changed a little: the gradient of the "
        "score with respect to the input, channels summed. " + _GRADIENT_NOTE,
        formula=r"M_{ij} = \sum_{c} \frac{\partial S_t(x)}{\partial x_{cij}}",
        cost="One forward and one backward pass.",
        pitfalls=(
            "Visually noisy: the gradient of a deep network fluctuates sharply from pixel to pixel.",
            "Saturation: where the score no longer changes (a confident prediction), important pixels can "
            "have tiny gradients.",
            "It answers 'what would change the score', not 'what made the score'.",
        ),
        paper="Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks",
    ),
    "gradient_x_input": Lesson(
        computes="The gradient multiplied by the input: a first-order estimate of each pixel's contribution "
        "to the score relative to an all-zero input.",
        formula=r"M_{ij} = \sum_{c} x_{cij}\,\frac{\partial S_t(x)}{\partial x_{cij}}",
        cost="One forward and one backward pass (the same pass as the plain gradient, so switching is free).",
        pitfalls=(
            "Pixels whose input value is zero (after normalisation) get no attribution, however important.",
            "Strongly coloured regions dominate: part of the map is the image itself.",
        ),
        compare_with="edges_sobel",
        paper="Shrikumar et al. 2016, Not Just a Black Box",
    ),
    "guided_backprop": Lesson(
        computes="The gradient, except that at every ReLU only positive signals pass backwards (where the "
        "forward activation and the incoming gradient are both positive).",
        formula=r"R^{(l)} = \mathbf{1}\!\left[f^{(l)} > 0\right] \cdot \mathbf{1}\!\left[R^{(l+1)} > 0\right] "
        r"\cdot R^{(l+1)}",
        cost="One forward and one backward pass.",
        pitfalls=(
            "It behaves like an edge detector: the map changes little when the class or even the weights "
            "change (Adebayo et al. 2018, Sanity Checks for Saliency Maps). Compare it with the Sobel map "
            "below: if they look alike, the map shows the image more than the model.",
            "Sharp, convincing pictures are not evidence of faithfulness.",
        ),
        compare_with="edges_sobel",
        paper="Springenberg et al. 2015, Striving for Simplicity",
    ),
    "smoothgrad": Lesson(
        computes="The average of a gradient map over many noisy copies of the image, which cancels the "
        "pixel-to-pixel noise of the gradient.",
        formula=r"\hat M(x) = \frac{1}{n} \sum_{k=1}^{n} M\!\left(x + \varepsilon_k\right), \quad "
        r"\varepsilon_k \sim \mathcal{N}\!\left(0, \sigma^2\right),\ \sigma = \text{noise} \cdot "
        r"(x_{\max} - x_{\min})",
        cost="One forward and one backward pass per sample (25 by default).",
        params={
            "samples": "More samples: a smoother map, linearly more passes.",
            "noise": "Too little leaves the noise; too much blurs the map into the image's layout. 10–20% is "
            "the paper's advice.",
            "mode": "vargrad (the variance) highlights where gradients disagree under noise.",
        },
        pitfalls=(
            "Smoothing can make an unfaithful map look trustworthy.",
            "Maps depend on the seed at small sample counts.",
        ),
        paper="Smilkov et al. 2017, SmoothGrad",
    ),
    "integrated_gradients": Lesson(
        computes="Gradients accumulated along the straight path from a baseline image x' (what 'absence' "
        "means) to the input. The attributions add up to the score difference (completeness).",
        formula=r"\mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1 \frac{\partial S_t\big(x' + \alpha (x - x')\big)}"
        r"{\partial x_i}\, d\alpha, \qquad \sum_i \mathrm{IG}_i = S_t(x) - S_t(x')",
        cost="One forward and one backward pass per step (32 by default), plus the baseline.",
        params={
            "steps": "More steps: a more exact integral (check completeness), linearly more passes.",
            "baseline": "The baseline decides the question: a black baseline gives black pixels zero "
            "attribution by construction; a blurred one asks what detail contributed.",
        },
        pitfalls=(
            "There is no neutral baseline: different baselines give different, equally 'correct' maps.",
            "Too few steps break completeness; the sum no longer matches the score difference.",
        ),
        paper="Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks",
    ),
    "gradcam": Lesson(
        computes="Each channel of a convolutional layer weighted by the mean gradient of the target score over "
        "that channel, summed: where the evidence for the target sits, at the layer's resolution.",
        formula=r"\alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial S_t}{\partial A^k_{ij}}, \qquad "
        r"M = \sum_k \alpha_k A^k \quad (\text{shown: } \mathrm{ReLU}(M), \text{ upsampled})",
        cost="One forward and one backward pass; other CAM variants on the same layer reuse them.",
        params={
            "layer": "Deeper layers: coarser but more class-specific maps; earlier layers: finer, noisier."
        },
        pitfalls=(
            "Coarse: at the last layer of a ResNet a map cell covers 32×32 pixels.",
            "Averaging the gradient can cancel positive and negative evidence (HiResCAM avoids that).",
            "Several instances of a class: the map may highlight only some of them.",
        ),
        paper="Selvaraju et al. 2017, Grad-CAM",
    ),
    "gradcam_pp": Lesson(
        computes="Grad-CAM with channel weights built from positive gradients and higher-order terms, which "
        "helps when several instances of the class appear.",
        formula=r"\alpha_k = \sum_{i,j} w^k_{ij}\, \mathrm{ReLU}\!\left(g^k_{ij}\right), \qquad "
        r"w^k_{ij} = \frac{(g^k_{ij})^2}{2 (g^k_{ij})^2 + \sum_{a,b} A^k_{ab} (g^k_{ij})^3}",
        cost="Free after Grad-CAM on the same layer (same activations and gradients).",
        pitfalls=(
            "The higher-order terms assume an exponential output; with raw logits they are approximate.",
        ),
        paper="Chattopadhyay et al. 2018, Grad-CAM++",
    ),
    "xgradcam": Lesson(
        computes="Grad-CAM with each gradient weighted by the activation's share of its channel, derived from "
        "sensitivity and conservation axioms.",
        formula=r"\alpha_k = \sum_{i,j} \frac{A^k_{ij}}{\sum_{a,b} A^k_{ab}} \frac{\partial S_t}{\partial A^k_{ij}}",
        cost="Free after Grad-CAM on the same layer.",
        pitfalls=("Channels with near-zero total activation get unstable weights.",),
        paper="Fu et al. 2020, Axiom-based Grad-CAM",
    ),
    "hirescam": Lesson(
        computes="Gradients multiplied by activations element-wise, without averaging: provably shows the "
        "locations the score depends on for models ending in global pooling and a linear layer.",
        formula=r"M = \sum_k \frac{\partial S_t}{\partial A^k} \odot A^k",
        cost="Free after Grad-CAM on the same layer.",
        pitfalls=("Noisier than Grad-CAM because nothing is averaged.",),
        paper="Draelos & Carin 2020, HiResCAM",
    ),
    "layercam": Lesson(
        computes="Positive gradients times activations, location by location; works well at earlier layers "
        "where Grad-CAM's averaging blurs.",
        formula=r"M = \sum_k \mathrm{ReLU}\!\left(\frac{\partial S_t}{\partial A^k}\right) \odot A^k",
        cost="Free after Grad-CAM on the same layer.",
        params={"layer": "LayerCAM is meant for earlier layers too: try each stage to see finer detail."},
        pitfalls=("At early layers the map picks up edges and texture, not only the object.",),
        paper="Jiang et al. 2021, LayerCAM",
    ),
    "cam": Lesson(
        computes="The original class activation map: the last convolutional channels weighted by the linear "
        "classifier's weights for the target class.",
        formula=r"M = \sum_k w^{\mathrm{fc}}_{t,k}\, A^k",
        cost="One forward pass, no gradient.",
        pitfalls=(
            "Only for networks that end with global average pooling and one linear layer.",
            "Only meaningful at the layer feeding the pooling.",
        ),
        paper="Zhou et al. 2016, Learning Deep Features for Discriminative Localization",
    ),
    "eigencam": Lesson(
        computes="The first principal component of the layer's activations: the dominant spatial pattern, "
        "whatever the target.",
        formula=r"\bar A \in \mathbb{R}^{hw \times K} \text{ (centred)},\quad \bar A = U \Sigma V^\top, "
        r"\qquad M = \bar A\, v_1",
        cost="One forward pass, no gradient.",
        pitfalls=(
            "Class-agnostic: every target gets the same map.",
            "The sign of a principal component is arbitrary; the library orients it to agree with the mean "
            "activation, which is a convention, not evidence.",
        ),
        paper="Muhammad & Yeasin 2020, Eigen-CAM",
    ),
    "scorecam": Lesson(
        computes="Gradient-free: each channel, upsampled and normalised into a mask, is weighted by the target "
        "score of the image seen only through that mask (softmax over channels).",
        formula=r"s_k = S_t\!\left(x \odot \mathrm{norm}\big(\mathrm{up}(A^k)\big)\right), \qquad "
        r"\alpha = \mathrm{softmax}(s), \qquad M = \sum_k \alpha_k A^k",
        cost="One forward pass per channel of the layer (hundreds to thousands on large networks).",
        pitfalls=("Slow on wide layers.", "Masked images are unlike training images (out of distribution)."),
        paper="Wang et al. 2020, Score-CAM",
    ),
    "guided_gradcam": Lesson(
        computes="Guided Backpropagation multiplied by the upsampled, rectified Grad-CAM: fine detail, "
        "restricted to the class-relevant region.",
        formula=r"M = \mathrm{GB}(x) \odot \mathrm{up}\!\left(\mathrm{ReLU}(M_{\text{Grad-CAM}})\right)",
        cost="Two forward and two backward passes (guided and plain).",
        pitfalls=("Inherits Guided Backpropagation's edge-detector behaviour inside the region.",),
        compare_with="edges_sobel",
        paper="Selvaraju et al. 2017, Grad-CAM",
    ),
    "occlusion": Lesson(
        computes="A patch slides over the image; each pixel gets the mean drop of the target score over the "
        "patches that covered it.",
        formula=r"M_p = \frac{1}{|W_p|} \sum_{w \in W_p} \Big( S_t(x) - S_t\big(x_{w \leftarrow b}\big) \Big)",
        cost="One forward pass per patch position: (H / stride) × (W / stride), e.g. 169 at 224 px with "
        "stride 16.",
        params={
            "patch": "Smaller than the object's parts: fine maps; larger than the object: one blob.",
            "stride": "A stride larger than the patch leaves pixels that no patch covers (zero in the map).",
            "baseline": "What replaces the patch; each creates unnatural images in its own way.",
        },
        pitfalls=(
            "Occluded images are out of distribution: the model may react to the patch itself.",
            "Redundant evidence hides: if two parts each suffice, occluding one changes nothing.",
        ),
        paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
    ),
    "rise": Lesson(
        computes="Many random smooth masks; each pixel gets the average target score of the masked images "
        "it was visible in.",
        formula=r"M = \frac{1}{N\, \mathbb{E}[m]} \sum_{k=1}^{N} S_t\!\left(x \odot m_k\right) m_k",
        cost="One forward pass per mask (500 by default; the paper uses thousands).",
        params={
            "masks": "More masks: less noise, linearly more passes.",
            "cell": "The random grid's cell size: larger cells, coarser maps.",
            "p": "Share of cells kept visible in each mask.",
        },
        pitfalls=("Noisy with few masks; compare seeds before trusting fine detail.",),
        paper="Petsiuk, Das & Saenko 2018, RISE",
    ),
    "edges_sobel": Lesson(
        computes="A model-free reference: the image's gradient magnitude (Sobel filters on the blurred grey "
        "image). It knows nothing about the model.",
        formula=r"M = \sqrt{(G_x * I_\sigma)^2 + (G_y * I_\sigma)^2}",
        cost="No model pass.",
        pitfalls=(
            "Not an explanation: it is here to be compared with. A saliency map that matches it closely "
            "may be showing image structure rather than what the model used.",
        ),
    ),
    "edges_canny": Lesson(
        computes="A model-free reference: thin binary edges from the Canny detector (gradient magnitude, "
        "non-maximum suppression, hysteresis thresholds).",
        formula=r"M = \mathrm{hysteresis}_{\,\text{low},\,\text{high}}\!\left(\mathrm{NMS}\big(\|\nabla I_\sigma\|\big)\right)",
        cost="No model pass.",
        pitfalls=("A reference, not an explanation.",),
    ),
    "spectral_residual": Lesson(
        computes="Classical bottom-up saliency: what stands out from the image's own statistics, from the "
        "residual of its log-amplitude spectrum.",
        formula=r"R(f) = \log |F(I)| - h * \log |F(I)|, \qquad M = g * \left| F^{-1}\!\left[e^{R(f) + i P(f)}\right] "
        r"\right|^2",
        cost="No model pass.",
        pitfalls=("A reference for what is visually conspicuous, which a classifier need not use.",),
        paper="Hou & Zhang 2007, Saliency Detection: A Spectral Residual Approach",
    ),
}


def lesson(method_id: str) -> Lesson | None:
    return LESSONS.get(method_id)
