"""A user-callable reward for CLI tests (`--reward tests.helpers.rewards:redness`)."""


def redness(images, prompts):
    return images[:, 0].mean((1, 2)) - images[:, 1:].mean((1, 2, 3))
