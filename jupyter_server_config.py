# How JupyterLab runs for the exercises: `make lab` and tests/test_lab_validate.py both start it with
# `jupyter lab --config=<this file>`, so the test checks the set-up students get.
# Careful: if this file raises, Jupyter logs "Error loading config file" and starts WITHOUT it;
# the test checks for that line.
c = get_config()  # noqa: F821  (Jupyter defines get_config when it loads this file)

# Nothing here needs the internet, and many students and CI machines have none (or only a package
# mirror). JupyterLab would otherwise fetch its news feed, ask PyPI for a newer release, and let the
# extension manager search PyPI; offline each attempt only waits and logs an error. The course's
# extensions (nbgrader's Validate button among them) come from requirements.txt, not from the UI.
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"

# The announcements plugin still asks every new user "Would you like to get notified about official
# Jupyter news?" in a pop-up over the notebook, whatever news_url says: switch the plugin off. The
# hook edits the page's plugin list after JupyterLab has built it (a plain page_config_data setting
# would be overwritten by the list JupyterLab reads from disk).
ANNOUNCEMENTS = "@jupyterlab/apputils-extension:announcements"


def _without_announcements(handler, page_config):
    page_config["disabledExtensions"] = [*page_config.get("disabledExtensions", []), ANNOUNCEMENTS]
    return page_config


c.ServerApp.tornado_settings = {"page_config_hook": _without_announcements}

# Containers and CI machines often run as root, where Jupyter refuses to start unless told; for any
# other user this setting does nothing.
c.ServerApp.allow_root = True
