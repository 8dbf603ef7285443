"""What a job asks for beyond the model: stored with the job (as JSON, by pydantic), read by the
worker. Keys a stored job has that this farm does not know (written by a newer farm) are ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from farm.core.dataset import Dataset, InputMapping

# Thresholds a user may override; None keeps the precision's default (workers/verify.py).
THRESHOLD_NAMES = (
    "atol",
    "rtol",
    "min_top1",
    "max_mean_error",
    "max_accuracy_drop",
    "max_channel_error",
    "min_cosine",
    "max_expected_loss",
    "max_near_flips",
)


class StoredOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ConvertOptions(StoredOptions):
    precisions: list[str] = Field(default_factory=list)  # empty: every precision each backend builds
    calib_key: str | None = None  # artifact key of the --calib file
    calib_sha256: str | None = None
    eval_key: str | None = None  # artifact key of the --eval file (labelled verification samples)
    eval_sha256: str | None = None
    atol: float | None = None
    rtol: float | None = None
    min_top1: float | None = None
    max_mean_error: float | None = None
    max_accuracy_drop: float | None = None  # percentage points
    max_channel_error: float | None = None  # values: RMS error over each channel's spread
    min_cosine: float | None = None  # embeddings: mean cosine similarity
    max_expected_loss: float | None = (
        None  # deciding outputs: accuracy lost under the original's probabilities
    )
    max_near_flips: float | None = None  # deciding outputs: share flipped or with half their margin gone
    output_kinds: dict[str, str] = Field(default_factory=dict)  # --output-kind: name -> kind (outputkinds.py)
    search: bool = True  # a failing reduced-precision variant tries the backend's other recipes
    force: bool = False  # rebuild even when a cached variant matches
    allow_pickle: bool = False  # --allow-pickle: the owner trusts a pickle/joblib model file
    strict: bool = False  # a variant failing verification fails its task

    def threshold_overrides(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in THRESHOLD_NAMES}


class InferOptions(StoredOptions):
    """A batch-scoring job: which data, which variant per hardware class, where the output goes."""

    dataset: Dataset
    out: str  # the output folder
    inputs: list[InputMapping]  # one per model input
    outputs: list[str]  # the model's output names, in order
    output_columns: list[str]  # the output column of each, same order
    keep: list[str] = Field(default_factory=list)  # columns passed through to the output
    variants: dict[str, int] = Field(default_factory=dict)  # hardware class -> serving variant id
    serving: dict[str, str] = Field(default_factory=dict)  # hardware class -> "backend precision", to show
    batch_size: int = 256
    shard_rows: int = 0
    source_job: str | None = None  # the conversion job whose variants serve
    objective: str = "time"  # farm.core.cost.Objective: what chose the classes that score
    deadline_s: float | None = None  # --deadline: the estimate had to finish by then
    estimate: dict[str, float | None] = Field(default_factory=dict)  # seconds and cost, at submit
