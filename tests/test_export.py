"""Figure downloads: the matplotlib redraw of a plotly figure, and its animation as a GIF."""

import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui.export import frame_figure, to_gif, to_png
from ui.figures import add_player, forward_panels, quiver


def _animated(n=4):
    frames = [go.Frame(data=[go.Scatter(x=[0, k], y=[0, k]), go.Heatmap(z=np.arange(9.0).reshape(3, 3) * (k + 1), zmin=0, zmax=8 * n)], name=str(k))
              for k in range(n)]
    fig = go.Figure(data=list(frames[0].data), frames=frames)
    fig.update_layout(xaxis_range=[-1, n], yaxis_range=[-1, n])  # fixed axes, so every frame looks different
    return add_player(fig, [f.name for f in frames])


def test_png_is_an_image_of_the_asked_size():
    fig = forward_panels(get_dataset("moons"), make_schedule("cosine"), [0.0, 0.5, 1.0], n_points=100)
    img = Image.open(io.BytesIO(to_png(fig, 900, 300)))
    assert img.format == "PNG" and img.size == (900, 300)
    assert len(np.unique(np.asarray(img.convert("L")))) > 20  # something was drawn, not a blank canvas


def test_frame_figure_takes_each_frames_data():
    fig = _animated()
    for k in range(4):
        f = frame_figure(fig, k)
        assert list(f.data[0].y) == [0, k]
        assert np.asarray(f.data[1].z).max() == 8 * (k + 1)


def test_gif_has_one_image_per_frame():
    img = Image.open(io.BytesIO(to_gif(_animated(5), width=300)))
    assert img.format == "GIF" and img.n_frames == 5


def test_quiver_arrows_end_where_the_vectors_point():
    tr = quiver(np.array([0.0, 1.0]), np.array([0.0, 2.0]), np.array([1.0, 0.0]), np.array([0.0, -1.0]))
    xs, ys = tr.x, tr.y
    # each arrow: start, end, gap, head1, end, head2, gap
    assert (xs[0], ys[0], xs[1], ys[1]) == (0.0, 0.0, 1.0, 0.0)
    assert (xs[7], ys[7], xs[8], ys[8]) == (1.0, 2.0, 1.0, 1.0)
    assert xs[2] is None and xs[6] is None
    png = to_png(go.Figure([tr]), 300, 200)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_figure_rebuilt_from_its_dict_draws_the_same_png():
    """The pages cache animations as plain dicts, where plotly stores numpy data as base64 typed arrays
    ({'dtype', 'bdata', 'shape'}); the download draws those exactly as it draws the numpy figure."""
    z = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    fig = go.Figure([go.Heatmap(z=z, x=np.arange(6.0), y=np.arange(5.0)),
                     go.Scatter(x=np.array([0.5, 2.0]), y=np.array([1.0, 3.0]), mode="markers",
                                marker=dict(color=np.array([0.1, 0.9]), colorscale="Viridis")),
                     go.Bar(x=np.array([1.0, 2.0]), y=np.array(["a", "b"]), orientation="h", xaxis="x2", yaxis="y2")])
    fig.update_layout(xaxis=dict(domain=[0, 0.45]), xaxis2=dict(domain=[0.55, 1]), yaxis2=dict(anchor="x2"))
    rebuilt = go.Figure(fig.to_dict())
    assert isinstance(rebuilt.data[0].z, dict) and "bdata" in rebuilt.data[0].z  # the encoding under test
    same = [np.asarray(Image.open(io.BytesIO(to_png(f, 400, 200)))) for f in (fig, rebuilt)]
    np.testing.assert_array_equal(same[0], same[1])
