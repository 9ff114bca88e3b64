"""From a fitted MLlib pipeline to a :class:`~lakehouse.ml.compiled.CompiledModel`: the stages'
parameters read once (label lists, one-hot widths, scaler moments, coefficients) and every tree
walked into flat node arrays. What each stage means, and the checks, are in
:mod:`lakehouse.ml.compiled`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lakehouse.ml.compiled import Categorical, CompiledModel, Forest, NotCompilable

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel


def compile_pipeline(model: PipelineModel) -> CompiledModel:
    """A fitted pipeline of :func:`lakehouse.ml.pipeline.make_pipeline` → :class:`CompiledModel`
    (:class:`NotCompilable` for anything else)."""
    from pyspark.ml.classification import (
        GBTClassificationModel,
        LogisticRegressionModel,
        RandomForestClassificationModel,
    )
    from pyspark.ml.feature import (
        OneHotEncoderModel,
        SQLTransformer,
        StandardScalerModel,
        StringIndexerModel,
        VectorAssembler,
    )

    from lakehouse.ml.calibration import split_calibration

    stages, calibration = split_calibration(model)
    labels: dict[str, tuple[str, ...]] = {}
    widths: dict[str, int] = {}
    assembler: VectorAssembler | None = None
    scaler: StandardScalerModel | None = None
    for stage in stages[:-1]:
        if isinstance(stage, SQLTransformer):
            continue  # the fill; its columns are read back from the assembler's inputs below
        if isinstance(stage, StringIndexerModel):
            if stage.getHandleInvalid() != "keep":
                raise NotCompilable("StringIndexer without handleInvalid='keep'")
            labels[stage.getOutputCol()] = tuple(stage.labelsArray[0])
        elif isinstance(stage, OneHotEncoderModel):
            size = int(stage.categorySizes[0])
            width = size + (1 if stage.getHandleInvalid() == "keep" else 0) - (1 if stage.getDropLast() else 0)
            widths[stage.getInputCol()] = width
        elif isinstance(stage, VectorAssembler):
            assembler = stage
        elif isinstance(stage, StandardScalerModel):
            scaler = stage
        else:
            raise NotCompilable(f"stage {type(stage).__name__} is not compiled")
    if assembler is None:
        raise NotCompilable("no VectorAssembler")
    numeric, categorical = _assembled_columns(assembler.getInputCols(), labels, widths)
    classifier = stages[-1]
    common = {"numeric": numeric, "categorical": categorical, "calibration": calibration}
    if isinstance(classifier, GBTClassificationModel):
        trees = [tree._java_obj.rootNode() for tree in classifier.trees]
        return CompiledModel(
            "gbt", forest=_forest(trees, "regression"), weights=np.asarray(classifier.treeWeights), **common
        )
    if isinstance(classifier, RandomForestClassificationModel):
        trees = [tree._java_obj.rootNode() for tree in classifier.trees]
        return CompiledModel("random_forest", forest=_forest(trees, "class_share"), **common)
    if isinstance(classifier, LogisticRegressionModel):
        if scaler is None or classifier.numClasses != 2:
            raise NotCompilable("logistic regression is compiled with its StandardScaler, two classes only")
        mean = np.asarray(scaler.mean.toArray()) if scaler.getWithMean() else np.zeros(scaler.std.size)
        std = np.asarray(scaler.std.toArray()) if scaler.getWithStd() else np.ones(scaler.std.size)
        return CompiledModel(
            "logistic_regression",
            coefficients=np.asarray(classifier.coefficients.toArray()),
            intercept=float(classifier.intercept),
            scale_mean=mean,
            scale_std=std,
            **common,
        )
    raise NotCompilable(f"classifier {type(classifier).__name__} is not compiled")


def _assembled_columns(
    inputs: list[str], labels: dict[str, tuple[str, ...]], widths: dict[str, int]
) -> tuple[tuple[str, ...], tuple[Categorical, ...]]:
    filled = [c.removesuffix("__filled") for c in inputs if c.endswith("__filled")]
    missing = [c.removesuffix("__missing") for c in inputs if c.endswith("__missing")]
    onehot = [c.removesuffix("__onehot") for c in inputs if c.endswith("__onehot")]
    expected = [f"{c}__filled" for c in filled] + [f"{c}__missing" for c in missing] + [f"{c}__onehot" for c in onehot]
    if filled != missing or expected != list(inputs):
        raise NotCompilable(f"unexpected assembler inputs {inputs}")
    categorical = tuple(Categorical(c, labels[f"{c}__index"], widths[f"{c}__index"]) for c in onehot)
    return tuple(filled), categorical


def _forest(roots: list, leaf: str) -> Forest:
    """Java tree nodes (py4j) → one flat set of arrays."""
    feature, threshold, categories, categorical, left, right, value, starts = [], [], [], [], [], [], [], []
    depth = 0

    def add(node, level: int) -> int:
        nonlocal depth
        depth = max(depth, level)
        at = len(feature)
        for array in (feature, threshold, categories, categorical, left, right, value):
            array.append(0)
        if node.getClass().getSimpleName() == "LeafNode":
            left[at] = right[at] = -1
            if leaf == "regression":
                value[at] = float(node.prediction())
            else:
                stats = list(node.impurityStats().stats())
                total = sum(stats)
                value[at] = stats[1] / total if total and len(stats) > 1 else 0.0
            threshold[at] = 0.0
            categorical[at] = False
            return at
        split = node.split()
        feature[at] = int(split.featureIndex())
        if split.getClass().getSimpleName() == "CategoricalSplit":
            cats = [int(c) for c in split.leftCategories()]
            if any(c < 0 or c > 62 for c in cats):
                raise NotCompilable("a categorical split with more than 63 categories")
            categories[at] = sum(1 << c for c in cats)
            categorical[at] = True
            threshold[at] = 0.0
        else:
            threshold[at] = float(split.threshold())
            categorical[at] = False
        value[at] = 0.0
        left[at] = add(node.leftChild(), level + 1)
        right[at] = add(node.rightChild(), level + 1)
        return at

    for root in roots:
        starts.append(add(root, 0))
    return Forest(
        roots=np.asarray(starts, np.int64),
        feature=np.asarray(feature, np.int64),
        threshold=np.asarray(threshold, np.float64),
        categories=np.asarray(categories, np.int64),
        categorical=np.asarray(categorical, bool),
        left=np.asarray(left, np.int64),
        right=np.asarray(right, np.int64),
        value=np.asarray(value, np.float64),
        depth=depth,
    )
