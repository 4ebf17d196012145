"""The lesson: the lab's whole argument as fourteen steps, in the order of the story (no Streamlit here).

Each step is data: a few sentences, the formula that matters, one control for its figure (drawn by
`ui.lesson_figures.build`), a "try this", a check question with its explained answer, and the full page that
goes deeper, with the settings that reopen it on the same view. pages/lesson.py draws a step;
ui/lesson_file.py writes all of them into one offline HTML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from .lesson_figures import DATASET, DSM_T, GUIDED_LABEL, XT


@dataclass(frozen=True)
class Control:
    """The one control of a step's figure: a URL-bound widget over `options`, opening at `default`."""

    label: str
    options: tuple
    default: object
    help: str = ""


@dataclass(frozen=True)
class Question:
    """A check question: multiple choice (`choices`, `answer` the right index) or, without choices, a number
    (`answer`, right within `tolerance`). `why` explains the answer."""

    prompt: str
    answer: float
    why: str
    choices: tuple = ()
    tolerance: float = 0.0

    def is_right(self, reply) -> bool:
        if reply is None:
            return False
        if self.choices:
            return reply == self.answer
        return abs(float(reply) - float(self.answer)) <= self.tolerance

    def answer_text(self) -> str:
        return self.choices[int(self.answer)] if self.choices else f"{self.answer:g}"


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    text: str  # markdown, 2-5 sentences
    formula: str  # LaTeX that st.latex and matplotlib's mathtext both draw
    control: Control
    try_this: str
    question: Question
    page: str  # url_path of the full page
    settings: dict = field(default_factory=dict)  # that page's widget values (by key) for the step's own view

    def page_state(self) -> dict:
        """The full page's view: the sidebar's and the page's widget values (by key) that show what this step shows."""
        return {"dataset": DATASET, "schedule": "cosine", "cosine.s": 0.008, "model": "shipped", "label": "none",
                **self.settings}

    def page_query(self) -> dict:
        """The same view as the full page's URL query parameters."""
        return {k: str(v) for k, v in self.page_state().items()}

    def page_url(self, base: str = "") -> str:
        return f"{base}/{self.page}?{urlencode(self.page_query())}"


MOONS = "two moons"
T_CHOICES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)

STEPS: list[Step] = [
    Step(
        "prompt", "A prompt picks out a distribution",
        "Ask an image generator for *a cat* twice and you get two different cats, both right. So a prompt c does "
        "not name one answer: it names a **distribution** p(x | c) over answers, and generating means drawing a "
        "sample from it. By Bayes' rule p(x | c) is the data's p(x) reweighted by how well each x fits the prompt, "
        f"p(c | x). Here the answers are points in the plane, the data are {MOONS}, and the prompt is which moon.",
        r"x \sim p(x \mid c) = \frac{p(c \mid x)\, p(x)}{p(c)}",
        Control("Prompt c", ("none", "upper moon", "lower moon"), "upper moon"),
        "Switch **Prompt c** between the moons and *none*. The grey density and the samples follow the prompt; "
        "the network's samples land where the exact ones do, but they are different points: each run is a fresh "
        "draw.",
        Question("You give a diffusion model the same prompt twice, with different random noise. What do you get?",
                 1, "A prompt fixes the distribution, not the answer: each run draws a new sample from p(x | c). "
                 "Only the noise decides which one.",
                 ("The same point both times", "Two different points from the same distribution p(x | c)",
                  "The most likely point of p(x | c) both times")),
        "data", {"label": "upper moon"},
    ),
    Step(
        "kl", "Learning a distribution directly needs a normalised model",
        "The direct way to fit a model p_θ to data is to make the KL divergence from the data small. Only the "
        "term −log p_θ(x) depends on θ, so this means raising the average log-likelihood of the data. That needs "
        "log p_θ(x) as a *number*, and the number means something only if p_θ integrates to one: raise p_θ "
        "everywhere without renormalising and the likelihood of every point rises, for free.",
        r"\mathrm{KL}(p \,\|\, p_\theta) = \mathbb{E}_{x \sim p}[\log p(x) - \log p_\theta(x)] \geq 0",
        Control("Noise level t of both maps", T_CHOICES, 0.05),
        "The left map is the exact −log p, the right one the trained network's own −log p_θ, which is normalised "
        "(step 12 says how). Hover to compare values. **Noise level t** blurs both with noise (step 7); t = 0.05 "
        "is nearly the clean data, and as t grows both smooth out together.",
        Question("A model outputs an unnormalised density and we use its log as the log-likelihood. We double the "
                 "output everywhere. What happens to that 'log-likelihood' of the data?",
                 2, "It rises by log 2 at every point, although the shape, and so the distribution, is unchanged. "
                 "Without the normaliser the number can be pushed up forever: the KL needs p_θ to integrate to one.",
                 ("Nothing: the shape is the same", "It falls by log 2", "It rises by log 2 at every point")),
        "energy", {"t": 0.05},
    ),
    Step(
        "energy", "The energy, and the normaliser nobody can compute",
        "Any positive function can be written as e^(−E(x)), with E the **energy**: low where data is likely. To make "
        "it a density we divide by Z, the integral of e^(−E) over every possible x. In two dimensions a grid of n × n "
        "points estimates Z well. In d dimensions the same grid has n^d points: for a 28 × 28 image, d = 784.",
        r"p(x) = \frac{e^{-E(x)}}{Z}, \qquad Z = \int e^{-E(x)}\, dx",
        Control("Grid points per axis n", (2, 3, 5, 10, 20, 50, 100), 5),
        "Set **Grid points per axis n** to 10 and read the curve at d = 784 (an MNIST image): the number of "
        "energy evaluations a grid needs for Z, on a log axis. Then try n = 2: still 2^784, about 10^236.",
        Question("With 10 grid points per axis, a grid over a 28 × 28 image needs 10^k energy evaluations. What is k?",
                 784, "The grid has 10 points on each of the 784 axes, so 10^784 points. There are about 10^80 atoms "
                 "in the universe.", tolerance=0.5),
        "energy", {"t": 0.0},
    ),
    Step(
        "chain", "The autoregressive route, briefly",
        "One way around Z: split the density by the chain rule into one coordinate at a time. Each factor is a "
        "density over a single number, normalised on its own, and sampling goes coordinate by coordinate. "
        "Language models do this with words. The price: every conditional must still be learned as a normalised "
        "density, in a fixed order. Diffusion takes another road.",
        r"p(x_1, x_2) = p(x_1)\, p(x_2 \mid x_1)",
        Control("Condition on x₁ = a", (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0), 0.0),
        "Move **Condition on x₁ = a** and watch p(x₂ | x₁ = a), the second panel: one bump where the line crosses "
        "one moon, two where it crosses both.",
        Question("What does the chain rule buy us?",
                 0, "Each factor is a density of one coordinate, so its normaliser is a one-dimensional integral "
                 "(or a sum over a vocabulary). It does not remove normalising: it makes it cheap, one factor "
                 "at a time.",
                 ("Every factor is a one-dimensional density, whose normaliser is cheap",
                  "It removes the need for any normaliser", "It lets all coordinates be sampled at once")),
        "energy", {"energy.a": 0.0},
    ),
    Step(
        "score", "The score, where Z cancels",
        "Take the gradient of log p instead of p itself. log Z is a constant, so its gradient is zero: the "
        "**score** ∇ log p needs no normaliser at all. It is an arrow at every point, pointing uphill in density. "
        "A model that knows the score can walk towards the data without ever knowing Z.",
        r"\nabla_x \log p(x) = -\nabla_x E(x) - \nabla_x \log Z = -\nabla_x E(x)",
        Control("Open the animation at t", (0.0, 0.1, 0.3, 0.5, 0.7, 1.0), 0.3),
        "Press **▶ Play** under the figure, or drag its slider: the exact score (left) and the network's (middle) "
        "over the data blurred by noise at level t, and their gap (right). The arrows are drawn ×σ_t so that every "
        "t fits; near t = 0 they pull hard onto the moons.",
        Question("We add a constant c to the energy E everywhere. What changes?",
                 1, "e^(−E−c) = e^(−c) e^(−E), so Z is multiplied by e^(−c) and p = e^(−E)/Z is unchanged, and so is "
                 "the score. The score only sees differences in energy.",
                 ("The score", "Z changes; p and the score stay the same", "Both the score and p")),
        "score", {"t": 0.3},
    ),
    Step(
        "detour", "We have no true score: the denoising detour",
        "For real data we have samples, not a formula for p, so there is no true score to learn from. The way "
        "out is to add noise we choose ourselves. For one clean point x₀ noised to x_t, the score of the noise we "
        "added is known exactly, and its average over the clean points that could have made x_t is the score of "
        "the noisy data p_t (step 10). Learning to denoise becomes learning the score.",
        r"\nabla_{x_t} \log \mathcal{N}(x_t;\, \alpha_t x_0,\, \sigma_t^2 I) = -\frac{x_t - \alpha_t x_0}{\sigma_t^2}",
        Control("Noise schedule", ("cosine", "linear", "sigmoid", "edm", "ve", "flow"), "cosine"),
        "Switch **Noise schedule**: the data blur into noise at each t at a different pace. The grey density of "
        "every panel is exact here because the lab's two moons are a chain of small Gaussians; for real data only "
        "the samples would be known.",
        Question("Why can't we train a network on ∇ log p_data directly?",
                 0, "We only have samples of the data; its density, and so its score, is unknown. The noise we add "
                 "is ours, so its score is known for every pair (x₀, x_t).",
                 ("We only have samples: p_data, and so its score, is unknown", "The score is not defined for images",
                  "The score needs Z")),
        "forward", {"t": 0.3},
    ),
    Step(
        "forward", "The forward process",
        "Every clean point x₀ is shrunk by α_t and blurred by Gaussian noise of size σ_t. At t = 0 nothing has "
        "happened; at t = 1 the data is gone and what is left is Gaussian noise. The corruption is ours, so for "
        "every clean x₀ the law of x_t is a known Gaussian. The density p_t of all the noisy points is known here "
        "only because our toy data is; for real data it is not.",
        r"x_t = \alpha_t x_0 + \sigma_t \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I)",
        Control("Noise schedule", ("cosine", "linear", "ve", "flow"), "cosine"),
        "Press **▶ Play**: the five black rings are single points moving along their own paths, pulled in by "
        "α_t while their own ε pushes them off. Try **Noise schedule** *ve*: α stays 1, so nothing shrinks; σ grows "
        "far past 1 and the view zooms out (watch the axis numbers).",
        Question("Under the cosine schedule, what do the points look like at t = 1?",
                 1, "α_1 is about 0 and σ_1 about 1, so x_1 ≈ ε: standard Gaussian noise, the same whatever the data "
                 "was. "
                 "That is why sampling can start from pure noise.",
                 ("Still two moons, only blurred", "Standard Gaussian noise, whatever the data was",
                  "All points at the origin")),
        "forward", {"t": 0.5},
    ),
    Step(
        "snr", "SNR and log-SNR: one clock for every schedule",
        "How much of x_t is still data? The signal-to-noise ratio compares α_t² with σ_t², and its logarithm λ "
        "runs from about +10 (nearly clean) to −10 (nearly pure noise) here. Schedules differ in how fast they "
        "walk down the λ axis, but two schedules at the same λ see the same picture up to a zoom.",
        r"\mathrm{SNR}(t) = \frac{\alpha_t^2}{\sigma_t^2}, \qquad \lambda_t = \log \frac{\alpha_t^2}{\sigma_t^2}",
        Control("Time t", (0.1, 0.3, 0.5, 0.7, 0.9), 0.1),
        "Move **Time t**: the dots show where the six schedules stand at that t. In the λ panel (bottom right), at "
        "t = 0.1 they lie more than 5 nats apart, a factor of over 100 in SNR: the same t is a different amount of "
        "noise in each schedule.",
        Question("Two schedules reach λ = 0 at different times t. At those times, how do their noisy points compare?",
                 0, "λ = 0 means α² = σ²: as much signal as noise. Dividing x_t by √(α² + σ²) makes the two "
                 "identical in distribution; λ (and that overall scale), not t, is what the denoiser needs to know.",
                 ("The same picture, up to an overall scale", "Different: t decides the noise",
                  "Both are pure noise")),
        "forward", {"t": 0.5},
    ),
    Step(
        "posterior", "Denoising is not one-to-one",
        "A noisy point could have come from many clean points: the posterior p(x₀ | x_t) says how likely each is. "
        "The best single guess in squared error is its mean, the **ideal denoiser**, which the network learns. "
        "At high noise the posterior spreads over both moons and its mean lies between them, where there is no data.",
        r"\hat{x}_0(x_t) = \mathbb{E}[x_0 \mid x_t] = \int x_0\, p(x_0 \mid x_t)\, dx_0",
        Control("Noise level t", (0.1, 0.3, 0.5, 0.7, 0.9), 0.5),
        "Raise **Noise level t** from 0.1 to 0.9 for the same noisy point (the cross marks x_t/α_t): the posterior "
        "spreads from the upper moon to both, and the ideal denoiser's answer and the network's leave the data.",
        Question("At high noise, for a noisy point near the moons, where is the ideal denoiser's answer?",
                 2, "It is the average of the posterior, which then covers both moons; the average of two arcs lies "
                 "between them. That blur is why one denoising step from pure noise gives no sample.",
                 ("On the nearest moon", "Far outside the data", "Between the moons, where there is no data")),
        "denoise", {"t": 0.5, "denoise.x1": XT[0], "denoise.x2": XT[1]},
    ),
    Step(
        "dsm", "Denoising score matching: a fan of targets",
        "Fix one noisy point x_t. Every clean point x₀ that could have made it gives a target (α_t x₀ − x_t)/σ_t², "
        "each a noisy guess of the score. Their average, weighted by the posterior p(x₀ | x_t) of step 9, is the "
        "exact score of p_t at x_t. A network trained to match these targets in squared error learns that average "
        "without ever seeing the score itself.",
        r"\nabla \log p_t(x_t) = \mathbb{E}\left[\frac{\alpha_t x_0 - x_t}{\sigma_t^2} \mid x_t\right]",
        Control("Targets drawn", (1, 4, 16, 64, 256, 1024, 4096), 64),
        "Move **Targets drawn** from 1 to 4,096: the fan of single targets (drawn ×σ_t², so they end at α_t x₀) "
        "fills in, and their running average settles on the exact score, with the network's score beside it.",
        Question("One single target (α_t x₀ − x_t)/σ_t² for a random x₀ from the posterior is...",
                 1, "Each target is right on average (its mean is the score) but far off on its own; the loss "
                 "averages over many of them, so the network learns the mean.",
                 ("The exact score at x_t", "A noisy estimate whose average is the score",
                  "A biased estimate of the score")),
        "denoise", {"t": DSM_T, "denoise.dsm.x1": XT[0], "denoise.dsm.x2": XT[1], "denoise.dsm.n": 64},
    ),
    Step(
        "targets", "ε, x₀ and v: three names for one prediction",
        "Given x_t, predicting the noise ε, the clean point x₀, or the velocity v = α_t ε − σ_t x₀ is the same "
        "prediction written three ways: any one gives the other two by a line of algebra. As training targets they "
        "differ in how the loss weighs the noise levels, and in how well-behaved they are near t = 0 and t = 1.",
        r"\hat{x}_0 = \frac{x_t - \sigma_t \hat{\varepsilon}}{\alpha_t}, \qquad "
        r"v = \alpha_t \varepsilon - \sigma_t x_0",
        Control("Time t of this draw", (0.1, 0.3, 0.5, 0.7, 0.9), 0.5),
        "Move **Time t of this draw**: one clean point and one ε. The arrows are the three targets (ε and x₀ drawn "
        "from the origin, v from x_t); the diamonds show where the ideal denoiser's and the network's predictions put "
        "each tip.",
        Question("A network predicts ε̂ at x_t. Can we get its x̂₀?",
                 0, "Yes: x_t = α_t x₀ + σ_t ε, so x̂₀ = (x_t − σ_t ε̂)/α_t (wherever α_t > 0). The three "
                 "parameterizations are one prediction.",
                 ("Yes, by x̂₀ = (x_t − σ_t ε̂)/α_t", "Only by training a second network",
                  "No: ε and x₀ are unrelated")),
        "train", {"train.targets_t": 0.5},
    ),
    Step(
        "reverse", "The reverse walk: from noise back to data",
        "Sampling runs the corruption backwards. Start from Gaussian noise at t = 1 and step down to t = 0: at each "
        "step the network predicts x̂₀ and ε̂ from x_t, and the next point is rebuilt from them at the lower noise "
        "level s. This step (DDIM) is a simple solver of the probability-flow **ODE**, a fixed map: same start, same "
        "end, smooth paths (the figure uses a finer solver, Heun's). The reverse **SDE** also adds fresh noise on "
        "each step; with a good score and small enough steps, both end on the data distribution.",
        r"x_s = \alpha_s\, \hat{x}_0(x_t) + \sigma_s\, \hat{\varepsilon}(x_t), \qquad s < t",
        Control("Sampler steps", (5, 10, 25, 50), 25),
        "Each colour starts from the same noise point (its ring) in both panels: it walks a smooth path under the "
        "ODE and a jittery one under the SDE. Lower **Sampler steps** to 5: the ODE still lands on the moons, the "
        "SDE's cloud does not (the noise it adds is removed again only over many small steps).",
        Question("The same starting noise is run twice through the ODE sampler. Where does it end?",
                 0, "The probability-flow ODE is deterministic: the same start always ends at the same point. The SDE "
                 "would end somewhere else each time.",
                 ("At the same point both times", "At a different point each time", "At the mean of the data")),
        "reverse", {"t": 0.3},
    ),
    Step(
        "guidance", "Guidance and composed prompts",
        "Classifier-free guidance pushes the score of p_t(x | c) further away from the unconditional one, by a "
        "weight w. Samples become more typical of the prompt and less varied, but they are drawn from neither "
        "p(x | c) nor any density the formula names at t = 0. Scores of several prompts combine the same way: "
        "for 'a, not b', s_a + w (s_a − s_b); the full page shows it.",
        r"s_w = (1 + w)\, \nabla \log p_t(x \mid c) - w\, \nabla \log p_t(x)",
        Control("Guidance weight w", (0.0, 1.0, 2.0, 4.0), 2.0),
        "Raise **Guidance weight w** from 0 to 4 (blue: the ODE's samples, orange: the SDE's): the upper moon's "
        "samples crowd to its far side, away from the lower moon, for the exact scores and the network's alike.",
        Question("With w > 0, the guided samples are drawn from...",
                 2, "At each t the guided score is that of p_t(x | c)^(1+w) p_t(x)^(−w)/Z_t. Those densities are "
                 "not the "
                 "t = 0 tilted density p(x | c)^(1+w) p(x)^(−w)/Z blurred by noise, so the reverse walk samples "
                 "neither p(x | c) nor the tilted density exactly.",
                 ("p(x | c), only more of them", "The tilted density p(x | c)^(1+w) p(x)^(−w)/Z",
                  "Neither exactly")),
        "reverse", {"label": "upper moon", "reverse.gw": 2.0},
    ),
    Step(
        "learned", "What the model learned, against the truth",
        "Everything the network knows is its denoiser at every t: where it moves each noisy point. Here the "
        "exact answer is known, so the two can be set side by side. Near the data they agree closely; far from "
        "it, where training drew few noisy points, the network's arrows go astray.",
        r"\hat{x}_\theta(x_t, t) \approx \mathbb{E}[x_0 \mid x_t]",
        Control("Open the animation at t", (0.1, 0.3, 0.5, 0.9), 0.3),
        "Press **▶ Play** and compare the arrows in the corners of the box, far from both moons, with those near "
        "the moons, exact (left) against learned (right).",
        Question("Where does the learned denoiser differ most from the exact one?",
                 1, "Training noises real data, so at low noise it rarely sees a point far from the data. On this "
                 "model, "
                 "at low noise the error far from the data is many times the error near it.",
                 ("Near the data, where the density is sharp", "Far from the data, at low noise",
                  "Everywhere the same")),
        "denoise", {"t": 0.3},
    ),
]


def index_of(raw) -> int:
    """The 0-based step a URL's `step` (1-based) names, or 0."""
    try:
        k = int(str(raw))
    except (TypeError, ValueError):
        return 0
    return k - 1 if 1 <= k <= len(STEPS) else 0
