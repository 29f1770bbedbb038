"""nbval runs the example notebooks in kernels that inherit this environment: a throwaway store."""

import os
import tempfile

os.environ["MLTRACK_TRACKING_URI"] = tempfile.mkdtemp(prefix="mltrack-nbval-")
