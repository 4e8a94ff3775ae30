"""Every knob of rlm-mcp: its default, its environment variable and its command-line flag.

This is the only package that reads the environment. A setting ``foo_bar`` is
read from ``RLM_FOO_BAR`` and can be overridden on the command line with
``--foo-bar``; ``rlm-mcp serve --help`` lists them all. AWS settings are left to
boto3's own chain (``AWS_PROFILE``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, ...), with one addition: ``AWS_REGION``,
which the AWS runtimes set but botocore does not read, is used when boto3
finds no region of its own.

The package is split by what each part holds: ``names`` (the setting -> variable/flag rule),
``settings`` (the settings), ``flags`` (the command line), ``host`` (where things live on this machine)
and ``tokens`` (the ``NAME:TOKEN`` parser). Import from ``rlm_mcp.config``.
"""

from rlm_mcp.config.flags import (
    COMMON_SETTINGS,
    add_setting_flags,
    default_text,
    describe_errors,
    settings_from_args,
)
from rlm_mcp.config.host import (
    SYSTEM_DIRECTORIES,
    ToolDirectories,
    codex_home,
    default_data_dir,
    too_broad,
    tool_directories,
    user_config_dir,
)
from rlm_mcp.config.names import ENV_PREFIX, describe_setting, env_name, flag_dest, flag_name, settings_given
from rlm_mcp.config.settings import Settings, setting_for_env
from rlm_mcp.config.tokens import MIN_TOKEN_CHARS, TOKEN_HOW_TO, parse_token_entries

__all__ = [
    "COMMON_SETTINGS",
    "ENV_PREFIX",
    "MIN_TOKEN_CHARS",
    "SYSTEM_DIRECTORIES",
    "TOKEN_HOW_TO",
    "Settings",
    "ToolDirectories",
    "add_setting_flags",
    "codex_home",
    "default_data_dir",
    "default_text",
    "describe_errors",
    "describe_setting",
    "env_name",
    "flag_dest",
    "flag_name",
    "parse_token_entries",
    "setting_for_env",
    "settings_from_args",
    "settings_given",
    "too_broad",
    "tool_directories",
    "user_config_dir",
]
