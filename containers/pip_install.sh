#!/bin/sh
# pip install of a lock file inside an image build (both Dockerfiles bind-mount this script; it is not in the images).
# The builder's pip settings arrive as build secrets and the host's wheelhouse as the `wheels` build context when
# containers/build.sh passes them; neither is stored in a layer. Without them pip uses the image's own defaults.
# usage: pip_install.sh LOCKFILE
set -eu
lock=$1
[ -f /run/secrets/pip.conf ] && export PIP_CONFIG_FILE=/run/secrets/pip.conf
[ -f /run/secrets/pip-ca ] && export PIP_CERT=/run/secrets/pip-ca
if [ -f /run/secrets/pip-env ]; then set -a; . /run/secrets/pip-env; set +a; fi
# Exactly the lock's versions, no dependency resolution (suite2p 1.x declares cellpose>=4; we run Cellpose 3).
# Offline from the wheelhouse when it holds every pin, else from the index.
if ! pip install --no-deps --no-index --find-links /wheels -r "$lock" 2>/dev/null; then
    echo "pip_install.sh: the wheelhouse lacks some of $lock; installing from the package index"
    pip install --no-deps -r "$lock"
fi
