"""The EEG model contract (after braindecode's ``EEGModuleMixin``): signal parameters inferred from each other.

A model is described by ``n_chans``, ``n_times``, ``sfreq``, ``chs_info`` and ``input_window_seconds``.
Missing values are inferred where possible (``n_chans = len(chs_info)``,
``n_times = round(input_window_seconds * sfreq)``, ``sfreq = n_times / input_window_seconds``) and
inconsistent ones are an error that names the values.
"""

import dataclasses

from ttdnet.errors import TtdnetError


class SignalSpecError(TtdnetError, ValueError):
    """Signal parameters are missing, inconsistent, or do not match the data or weights."""


@dataclasses.dataclass(frozen=True)
class SignalSpec:
    """The input signal a model expects: ``(batch, n_chans, n_times)`` sampled at ``sfreq``.

    Attributes
    ----------
    n_chans : int
    n_times : int
    sfreq : float
        Hz.
    ch_names : tuple of str or None
        Channel names in input order, when known.
    """

    n_chans: int
    n_times: int
    sfreq: float
    ch_names: tuple[str, ...] | None = None

    @property
    def input_window_seconds(self) -> float:
        return self.n_times / self.sfreq

    @classmethod
    def infer(
        cls,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: list[dict] | None = None,
        input_window_seconds: float | None = None,
    ) -> "SignalSpec":
        """Complete and check the signal parameters.

        Parameters
        ----------
        n_chans, n_times, sfreq, input_window_seconds : optional
        chs_info : list of dict, optional
            One dict per channel with at least ``"ch_name"`` (as in ``mne.Info["chs"]``).

        Raises
        ------
        SignalSpecError
            When values contradict each other or one cannot be inferred.
        """
        ch_names = None
        if chs_info is not None:
            try:
                ch_names = tuple(str(info["ch_name"]) for info in chs_info)
            except (KeyError, TypeError) as error:
                raise SignalSpecError("chs_info must be a list of dicts with a 'ch_name' key") from error
            if n_chans is not None and n_chans != len(ch_names):
                raise SignalSpecError(f"n_chans={n_chans} different from len(chs_info)={len(ch_names)}")
            n_chans = len(ch_names)
        if n_times is None and input_window_seconds is not None and sfreq is not None:
            n_times = int(round(input_window_seconds * sfreq))
        if sfreq is None and input_window_seconds is not None and n_times is not None:
            sfreq = n_times / input_window_seconds
        if n_times is not None and sfreq is not None and input_window_seconds is not None:
            if abs(n_times - input_window_seconds * sfreq) > 0.5:
                raise SignalSpecError(
                    f"n_times={n_times} different from input_window_seconds={input_window_seconds} * sfreq={sfreq}"
                )
        missing = [
            hint
            for value, hint in (
                (n_chans, "n_chans could not be inferred: give n_chans or chs_info"),
                (n_times, "n_times could not be inferred: give n_times, or input_window_seconds and sfreq"),
                (sfreq, "sfreq could not be inferred: give sfreq, or n_times and input_window_seconds"),
            )
            if value is None
        ]
        if missing:
            raise SignalSpecError("; ".join(missing))
        if n_chans < 1 or n_times < 1 or sfreq <= 0:
            raise SignalSpecError(f"need n_chans >= 1, n_times >= 1, sfreq > 0; got {n_chans=}, {n_times=}, {sfreq=}")
        return cls(n_chans=int(n_chans), n_times=int(n_times), sfreq=float(sfreq), ch_names=ch_names)

    def check_batch(self, x, model_name: str) -> None:
        """Raise a :class:`SignalSpecError` unless ``x`` has shape ``(batch, n_chans, n_times)``.

        Parameters
        ----------
        x : torch.Tensor
            A model's input.
        model_name : str
            Named in the message.
        """
        expected = (self.n_chans, self.n_times)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise SignalSpecError(
                f"{model_name} expects input of shape (batch, n_chans={expected[0]}, n_times={expected[1]}), "
                f"got {tuple(x.shape)}"
            )

    def check_matches(
        self, ch_names: list[str] | tuple[str, ...] | None, n_times: int, sfreq: float, source: str
    ) -> None:
        """Raise a :class:`SignalSpecError` listing every way the data ``source`` differs from this spec.

        Parameters
        ----------
        ch_names : sequence of str or None
            Channel names of the data, in order (None skips the name check; the count is still checked).
        n_times : int
        sfreq : float
        source : str
            What the data is (a path, "THINGS-EEG2 training split"), for the message.
        """
        problems = []
        if ch_names is not None and self.ch_names is not None and tuple(ch_names) != self.ch_names:
            missing = [name for name in self.ch_names if name not in ch_names]
            extra = [name for name in ch_names if name not in self.ch_names]
            detail = f"missing {missing}, extra {extra}" if missing or extra else "same names in a different order"
            problems.append(f"channels differ ({detail}); the model expects {list(self.ch_names)}")
        elif ch_names is not None and len(ch_names) != self.n_chans:
            problems.append(f"{len(ch_names)} channels, the model expects {self.n_chans}")
        if n_times != self.n_times:
            problems.append(f"{n_times} time samples per window, the model expects {self.n_times}")
        if abs(sfreq - self.sfreq) > 1e-6 * self.sfreq:
            problems.append(f"sampling rate {sfreq:g} Hz, the model expects {self.sfreq:g} Hz")
        if problems:
            raise SignalSpecError(
                f"{source} does not fit the model: " + "; ".join(problems) + ". Pick channels by name, resample "
                "and crop the window so the data matches the encoder config (or configure the encoder for this data)."
            )
