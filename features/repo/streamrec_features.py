"""The Feast objects of streamrec as module attributes, which is how `feast apply` run in this folder finds them.

Thin on purpose: everything is built by `streamrec.features.definitions` from `streamrec.features.schema`, the
same code the programmatic `streamrec features apply` uses. Batch-source files live under
$STREAMREC_FEATURES_STATE_DIR/data.
"""

from __future__ import annotations

import os
from pathlib import Path

from streamrec.features.config import DEFAULT_STATE_DIR, data_dir
from streamrec.features.definitions import build_definitions

_definitions = build_definitions(data_dir(Path(os.environ.get("STREAMREC_FEATURES_STATE_DIR", DEFAULT_STATE_DIR))))

session, item, user, product = _definitions.entities
session_features_push, item_features_push, user_features_push, product_features_push = _definitions.push_sources
session_features, item_features, user_features, product_features = _definitions.feature_views
