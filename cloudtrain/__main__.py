"""``python -m cloudtrain``: the same as the ``cloudtrain`` command."""

from cloudtrain.cli.main import main

if __name__ == "__main__":
    main()
