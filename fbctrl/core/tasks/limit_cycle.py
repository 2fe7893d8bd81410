"""A limit-cycle task: generate a commanded rhythm (Methods, "Beyond the paper").

Cleaned-up version of the published code's ``Sinewave`` task (Methods, "The limit-cycle task"). Per trial,
with the
commanded frequency f (Hz), warm-up length g = ``go_step`` and step dt::

    inputs  s_k = (0, h)                     k <  g     (hold signal h, no command yet)
            s_k = (c f, 0)                   k >= g     (the commanded frequency, c = input_scale)
    phase   phi_k = 2 pi f_target dt max(0, k - g)
    target  vstar_k = A (sin phi_k, cos phi_k)           (amplitude A on every step)
    vref_0 = vstar_0,  vref_k = vstar_{k-1}              (the reaching task's one-step lag)

During the warm-up the target holds the cycle's starting point (0, A), so it is continuous; from
step g on it turns at f_target, which equals f unless a :class:`FrequencyShift` moves it to
f + shift (the inputs, the amplitude and the starting phase stay). The network's two outputs
are compared with it through the integrated error exactly as in the reaching task
(``E[k+1] = E[k] + dt (vref_k - v_k)``), and that error is what the controller feeds back.

Training frequencies are f ~ U(freq_low, freq_high), drawn from the network's generator; the
test conditions are ``n_test_freqs`` frequencies evenly spaced over the range (centres of equal
bins), the limit cycle's counterpart of the 8 centre-out targets. Defaults: 170 steps of 10 ms,
a 20-step warm-up and 1-3 Hz, so the slowest cycle turns 1.5 times after the warm-up (the
published task's 125 steps and 0.8-3.2 Hz gave 0.84 turns at its slowest).

Success is measured as the loss with the controller off and the error of the output's frequency,
read from the peak of its spectrum (:func:`spectral_peak_hz`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from ..model import draw_x0
from ..task import Trials, draw_pushes
from .base import Task, TestSet
from .perturbations import FrequencyShift, Perturbation

__all__ = ["LimitCycleConfig", "LimitCycle", "cycle_targets", "cycle_trials", "commanded_freq", "spectral_peak_hz",
           "cycle_metrics"]


@dataclass(frozen=True)
class LimitCycleConfig:
    """Every constant of the limit-cycle task (module docstring)."""

    T: int = 170                 # steps per trial
    dt: float = 0.01             # s per step
    go_step: int = 20            # warm-up steps: hold signal on, no command, target held at (0, A)
    freq_low: float = 1.0        # Hz, lowest commanded frequency
    freq_high: float = 3.0       # Hz, highest
    amplitude: float = 1.0       # A: of both outputs
    hold: float = 1.0            # hold input during the warm-up
    input_scale: float = 1.0     # input per Hz of commanded frequency
    n_test_freqs: int = 8        # test conditions, evenly spaced over [freq_low, freq_high]
    push_prob: float = 0.25      # pushes (training with ``push``): per trial and output, as in reaching
    #                              (Methods, "Task")
    push_amplitude: float = 10.0 # added to the output for push_duration steps: the reaching task's pushes
    push_duration: int = 10
    push_centre_low: int = 20    # the pulse's centre step, uniform in [low, high]: after the warm-up
    push_centre_high: int = 169

    def __post_init__(self):
        for name in ("T", "n_test_freqs"):
            v = getattr(self, name)
            if int(v) != v or v <= 0:
                raise ValueError(f"LimitCycleConfig.{name} must be a positive integer, got {v}")
        if not 0 <= self.go_step < self.T:
            raise ValueError(f"LimitCycleConfig.go_step must lie in [0, T={self.T}), got {self.go_step}")
        if not self.dt > 0:
            raise ValueError(f"LimitCycleConfig.dt must be > 0, got {self.dt}")
        if not 0 < self.freq_low <= self.freq_high:
            raise ValueError(f"LimitCycleConfig needs 0 < freq_low <= freq_high, got {self.freq_low}, {self.freq_high}")
        if not self.amplitude > 0:
            raise ValueError(f"LimitCycleConfig.amplitude must be > 0, got {self.amplitude}")
        if not 0.0 <= self.push_prob <= 1.0:
            raise ValueError(f"LimitCycleConfig.push_prob must lie in [0, 1], got {self.push_prob}")
        if self.push_duration <= 0 or self.push_centre_high < self.push_centre_low:
            raise ValueError("LimitCycleConfig needs push_duration > 0 and push_centre_high >= push_centre_low")

    @property
    def cycles_at_lowest(self) -> float:
        """Turns of the slowest commanded cycle between the warm-up and the end of a trial."""
        return self.freq_low * (self.T - self.go_step) * self.dt

    def test_freqs(self, dtype=torch.float64) -> torch.Tensor:
        """The ``n_test_freqs`` test frequencies: centres of equal bins of [freq_low, freq_high]."""
        K = self.n_test_freqs
        w = (self.freq_high - self.freq_low) / K
        return self.freq_low + w * (torch.arange(K, dtype=torch.float64) + 0.5).to(dtype)


def cycle_targets(cfg: LimitCycleConfig, f_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(vstar, vref) [T, B, 2] in float64 for target frequencies ``f_target`` [B] (Hz)."""
    f_target = torch.as_tensor(f_target, dtype=torch.float64).reshape(-1)
    k = torch.arange(cfg.T, dtype=torch.float64)
    phase = 2 * math.pi * cfg.dt * (k - cfg.go_step).clamp_min(0)[:, None] * f_target[None, :]   # [T, B]
    vstar = cfg.amplitude * torch.stack([torch.sin(phase), torch.cos(phase)], -1)
    vref = torch.cat([vstar[:1], vstar[:-1]], 0)
    return vstar, vref


def cycle_trials(cfg: LimitCycleConfig, freq: torch.Tensor, *, shift_hz: float = 0.0, target=None,
                 dtype=torch.float32) -> Trials:
    """Trials commanding the frequencies ``freq`` [B] (Hz), the target cycle at ``freq + shift_hz``."""
    freq = torch.as_tensor(freq, dtype=torch.float64).reshape(-1)
    B = freq.shape[0]
    f_target = freq + float(shift_hz)
    vstar, vref = cycle_targets(cfg, f_target)
    inputs = torch.zeros(cfg.T, B, 2, dtype=torch.float64)
    inputs[cfg.go_step:, :, 0] = cfg.input_scale * freq
    inputs[: cfg.go_step, :, 1] = cfg.hold
    target = torch.full((B,), -1, dtype=torch.long) if target is None else torch.as_tensor(target, dtype=torch.long)
    zeros2 = torch.zeros(B, 2, dtype=dtype)
    return Trials(inputs=inputs.to(dtype), vstar=vstar.to(dtype), vref=vref.to(dtype),
                  push=torch.zeros(cfg.T, B, 2, dtype=dtype), start=zeros2, end=zeros2.clone(), target=target,
                  freq=f_target.to(dtype))


def commanded_freq(cfg: LimitCycleConfig, trials: Trials) -> torch.Tensor:
    """The frequency the inputs command [*B] (read back from the input after the warm-up)."""
    return trials.inputs[cfg.go_step, ..., 0].to(torch.float64) / cfg.input_scale


def spectral_peak_hz(v: torch.Tensor, dt: float, first_step: int = 0, pad_to: int = 8192) -> torch.Tensor:
    """The frequency (Hz) of the peak of the spectrum of the cycle ``v`` [T, *B, 2] = (sin, cos)
    from step ``first_step`` on: the periodogram of z_k = v_k[1] + i v_k[0] (= e^{i phi_k} for the
    target), zero-padded to ``pad_to`` points, its peak refined by a parabola through the three
    largest log-magnitudes. A pure cycle of frequency f gives f (the padded transform of a complex
    exponential peaks exactly at its frequency); a cycle turning the other way gives -f."""
    z = torch.complex(v[first_step:, ..., 1].to(torch.float64), v[first_step:, ..., 0].to(torch.float64))
    N = z.shape[0]
    n_fft = max(int(pad_to), 2 ** math.ceil(math.log2(4 * N)))
    mag = torch.fft.fft(z, n=n_fft, dim=0).abs().clamp_min(1e-300).log()
    m = mag.argmax(dim=0)
    left = mag.gather(0, ((m - 1) % n_fft).unsqueeze(0))[0]
    mid = mag.gather(0, m.unsqueeze(0))[0]
    right = mag.gather(0, ((m + 1) % n_fft).unsqueeze(0))[0]
    denom = left - 2 * mid + right
    delta = torch.where(denom.abs() > 0, 0.5 * (left - right) / denom, torch.zeros_like(denom))
    bins = m.to(torch.float64) + delta
    bins = torch.where(bins > n_fft / 2, bins - n_fft, bins)       # negative frequencies
    return bins / (n_fft * dt)


def cycle_metrics(v: torch.Tensor, trials: Trials, cfg: LimitCycleConfig) -> dict[str, torch.Tensor]:
    """Per trial [*B]: the output's spectral-peak frequency, its error against the target
    frequency (Hz, absolute) and the output's mean amplitude |v| after the warm-up."""
    peak = spectral_peak_hz(v, cfg.dt, cfg.go_step)
    amp = v[cfg.go_step:].to(torch.float64).norm(dim=-1).mean(0)
    return {"peak_hz": peak, "freq_error_hz": (peak - trials.freq.to(torch.float64).to(peak.device)).abs(),
            "amplitude": amp}


@dataclass
class LimitCycle(Task):
    """The limit-cycle task behind the task interface; ``config`` a :class:`LimitCycleConfig`."""

    config: LimitCycleConfig = field(default_factory=LimitCycleConfig)
    name: str = "limit-cycle"

    @property
    def n_in(self) -> int:
        return 2

    def training_batch(self, batch: int, generator: torch.Generator, *, push: bool = False,
                       dtype=torch.float32) -> Trials:
        """``batch`` trials at frequencies f ~ U(freq_low, freq_high) from ``generator``; with
        ``push``, pushes added to the output as in the reaching task (``task.draw_pushes`` with
        this task's push settings), drawn after the frequencies."""
        if int(batch) != batch or batch <= 0:
            raise ValueError(f"batch must be a positive integer, got {batch}")
        c = self.config
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        tr = cycle_trials(c, c.freq_low + (c.freq_high - c.freq_low) * u, dtype=dtype)
        return replace(tr, push=draw_pushes(c, batch, generator).to(dtype)) if push else tr

    def test_conditions(self, dtype=torch.float32) -> Trials:
        """One trial per test frequency (``LimitCycleConfig.test_freqs``), in order."""
        K = self.config.n_test_freqs
        return cycle_trials(self.config, self.config.test_freqs(), target=torch.arange(K), dtype=dtype)

    def perturb(self, trials: Trials, perturbation: Perturbation) -> Trials:
        """A :class:`FrequencyShift` moves the target cycle's frequency by ``hz`` (on top of any
        earlier shift); inputs, amplitude and the phase at the end of the warm-up stay."""
        if not isinstance(perturbation, FrequencyShift):
            raise ValueError(f"perturbation of the limit-cycle task must be a frequency shift, got {perturbation}")
        if trials.freq is None:
            raise ValueError("trials: not limit-cycle trials (no target frequency)")
        f_new = trials.freq.to(torch.float64) + perturbation.hz
        vstar, vref = cycle_targets(self.config, f_new.reshape(-1))
        shape, dt_ = trials.vstar.shape, trials.vstar.dtype
        return replace(trials, vstar=vstar.reshape(shape).to(dt_), vref=vref.reshape(shape).to(dt_),
                       freq=f_new.to(dt_))

    def default_perturbation(self) -> Perturbation:
        return FrequencyShift(0.5)

    def test_sets(self, n: int, *, seed: int = 12345, batch: int = 256, repeats: int = 8,
                  shift_hz: float = 0.5) -> list[TestSet]:
        """Pre-training's test sets: the test frequencies ``repeats`` times (controller on, shifted,
        controller off) and ``batch`` random frequencies, from a fixed generator."""
        g = torch.Generator().manual_seed(seed)
        K = self.config.n_test_freqs
        idx = torch.arange(K * repeats) % K
        cyc = cycle_trials(self.config, self.config.test_freqs()[idx], target=idx)
        cyc_x0 = draw_x0(n, cyc.batch_shape, g)
        rnd = self.training_batch(batch, g)
        rnd_x0 = draw_x0(n, rnd.batch_shape, g)
        return [
            TestSet("cycles", cyc, cyc_x0),
            TestSet(f"cycles_{FrequencyShift(shift_hz).name}", self.perturb(cyc, FrequencyShift(shift_hz)), cyc_x0),
            TestSet("random_cycles", rnd, rnd_x0),
            TestSet("cycles_ctrl_off", cyc, cyc_x0, controller_on=False),
        ]
