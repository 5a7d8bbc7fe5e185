"""Helpers shared by the examples: which data to use."""
import nnx


def fashion_data(full: bool, limit: int = 0):
    """((X, y), (X_test, y_test)): the shipped sample, or the full Fashion-MNIST with full=True
    (falling back to the sample when it is not installed)."""
    if full:
        try:
            train, test = nnx.data.fashion_mnist("train"), nnx.data.fashion_mnist("test")
        except FileNotFoundError as exc:
            print(f"{exc}\nusing the shipped sample instead")
            train, test = nnx.data.fashion_mnist_sample("train"), nnx.data.fashion_mnist_sample("test")
    else:
        train, test = nnx.data.fashion_mnist_sample("train"), nnx.data.fashion_mnist_sample("test")
    if limit:
        train = (train[0][:limit], train[1][:limit])
        test = (test[0][:limit], test[1][:limit])
    return train, test
