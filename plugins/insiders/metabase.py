"""Old import path of `insiders.dashboards` (provisioning); use the new modules instead."""

from insiders.dashboards.metabase import (  # noqa: F401
    METABASE_VERSION,
    MetabaseClient,
    MetabaseError,
    ProvisionItem,
    ProvisionReport,
)
from insiders.dashboards.provision import (  # noqa: F401
    database_from_settings,
    definition_dir_for,
    metabase_database,
    provision,
    provision_configured,
    provision_from_env,
)
from insiders.dashboards.spec import (  # noqa: F401
    CardSpec,
    DashboardSpec,
    DefinitionError,
    Position,
    default_definition_dir,
    load_definition,
)
