"""An offline EEG head model: ``standard_1005`` electrodes, a 3-shell sphere and fixed-orientation dipoles.

The 63 THINGS-EEG2 channels plus the reference Fz sit at their MNE ``standard_1005`` positions; the
spherical conductor is fitted to them (:func:`mne.make_sphere_model`), and the gain of arbitrary dipoles
comes from :func:`mne.make_forward_solution` on a discrete source space. Potentials are referenced to Fz,
the online reference of the recordings, and Fz itself is dropped, as in the stored data.
"""

import dataclasses

import mne
import numpy as np

from ttdnet.data.channels import RAW_63_CHANNELS, make_standard_1005_montage


REFERENCE_CHANNEL = "Fz"
MAX_SOURCE_RADIUS_M = 0.078
"""Sources stay this close to the sphere centre, inside the inner (brain) shell of radius ≈ 86 mm."""


@dataclasses.dataclass(frozen=True)
class HeadModel:
    """Electrodes and conductor.

    Attributes
    ----------
    info : mne.Info
        64 EEG channels: the 63 of :data:`RAW_63_CHANNELS` in raw order, then the reference Fz.
    sphere : mne.bem.ConductorModel
        Three-shell sphere fitted to the electrode positions.
    centre : numpy.ndarray, shape (3,)
        Sphere centre in head coordinates (m).
    electrode_positions : dict of str to numpy.ndarray of shape (3,)
        Head-coordinate position (m) of each of the 64 electrodes.
    """

    info: mne.Info
    sphere: mne.bem.ConductorModel
    centre: np.ndarray
    electrode_positions: dict[str, np.ndarray]

    def direction_to(self, channel: str) -> np.ndarray:
        """Unit vector, shape (3,), from the sphere centre towards electrode ``channel``."""
        vector = self.electrode_positions[channel] - self.centre
        return vector / np.linalg.norm(vector)


def build_head_model() -> HeadModel:
    """The electrode montage and the fitted sphere (no download, no MRI)."""
    names = [*RAW_63_CHANNELS, REFERENCE_CHANNEL]
    info = mne.create_info(names, sfreq=1000.0, ch_types="eeg")
    with mne.utils.use_log_level("error"):
        info.set_montage(make_standard_1005_montage())
        sphere = mne.make_sphere_model(r0="auto", head_radius="auto", info=info)
    positions = {channel["ch_name"]: channel["loc"][:3].copy() for channel in info["chs"]}
    return HeadModel(
        info=info, sphere=sphere, centre=np.asarray(sphere["r0"], dtype=float), electrode_positions=positions
    )


def dipole_gain(head: HeadModel, positions: np.ndarray, orientations: np.ndarray) -> np.ndarray:
    """Scalp potentials of unit dipoles, referenced to Fz.

    Parameters
    ----------
    head : HeadModel
    positions : numpy.ndarray, shape (n_sources, 3)
        Dipole positions in head coordinates (m), within :data:`MAX_SOURCE_RADIUS_M` of the centre.
    orientations : numpy.ndarray, shape (n_sources, 3)
        Unit dipole orientations.

    Returns
    -------
    numpy.ndarray, shape (63, n_sources)
        Volts per A·m on the 63 channels in raw order, minus the potential at Fz.
    """
    radii = np.linalg.norm(positions - head.centre, axis=1)
    if np.any(radii > MAX_SOURCE_RADIUS_M):
        raise ValueError(
            f"dipoles must lie within {MAX_SOURCE_RADIUS_M} m of the sphere centre; max is {radii.max():.4f}"
        )
    with mne.utils.use_log_level("error"):
        source_space = mne.setup_volume_source_space(pos={"rr": positions, "nn": orientations}, sphere=head.sphere)
        forward = mne.make_forward_solution(
            head.info, trans=None, src=source_space, bem=head.sphere, meg=False, eeg=True
        )
    if forward["nsource"] != len(positions):
        raise RuntimeError(f"the forward model kept {forward['nsource']} of {len(positions)} dipoles")
    free = forward["sol"]["data"].reshape(len(head.info["ch_names"]), len(positions), 3)
    gain = np.einsum("csk,sk->cs", free, orientations)
    return gain[:-1] - gain[-1:]
