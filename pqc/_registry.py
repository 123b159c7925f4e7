"""The registry: standard algorithm names -> providers, in a preference order.

``kem(name)`` walks the preference order (default: cryptography, pqcrypto, liboqs) and
returns the first provider's implementation; ``kem(name, provider=...)`` pins one. Hybrid
names are built from the ML-KEM of the chosen provider and pyca's curves. Registering the
same provider twice is harmless; registering a different one under a taken name raises
``ProviderConflict``. Everything is cached per (name, provider, preference), so the lookup
costs a dictionary access after the first call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from pqc import _hybrid, _names
from pqc._errors import ProviderConflict, UnsupportedAlgorithm
from pqc._interface import Kem, Provider, ProviderStatus, SignatureScheme

DEFAULT_PREFERENCE: tuple[str, ...] = ("cryptography", "pqcrypto", "liboqs")
_ALIASES = {**_hybrid.ALIASES, **_names.ALIASES}


class Registry:
    """A set of providers and a preference order. ``pqc`` uses one module-level instance."""

    def __init__(self, providers: Iterable[Provider] = (), preference: Sequence[str] = ()) -> None:
        self._lock = threading.RLock()
        self._providers: dict[str, Provider] = {}
        self._preference: tuple[str, ...] = tuple(preference) or DEFAULT_PREFERENCE
        self._kems: dict[tuple[str, str | None, tuple[str, ...]], Kem] = {}
        self._signatures: dict[tuple[str, str | None, tuple[str, ...]], SignatureScheme] = {}
        for provider in providers:
            self.register(provider)

    # -- providers and preference -----------------------------------------------------------

    def register(self, provider: Provider) -> None:
        """Add ``provider``; the same provider again is a no-op, a different one raises."""
        with self._lock:
            existing = self._providers.get(provider.name)
            if existing is not None:
                if existing is provider or type(existing) is type(provider):
                    return
                raise ProviderConflict(
                    f"a different provider ({type(existing).__name__}) is already registered "
                    f"as {provider.name!r}; unregister it first or choose another name"
                )
            self._providers[provider.name] = provider
            self._clear()

    def unregister(self, name: str) -> None:
        with self._lock:
            self._providers.pop(name, None)
            self._clear()

    def set_preference(self, names: Sequence[str]) -> None:
        """Try providers in this order; registered providers not listed come after."""
        unknown = [n for n in names if n not in self._providers]
        if unknown:
            raise UnsupportedAlgorithm(
                f"unknown provider(s) {', '.join(map(repr, unknown))} in the preference; "
                f"registered: {', '.join(self._providers)}"
            )
        with self._lock:
            self._preference = tuple(names)
            self._clear()

    def preference(self) -> tuple[str, ...]:
        """The full order in which providers are tried."""
        listed = [n for n in self._preference if n in self._providers]
        return (*listed, *(n for n in self._providers if n not in listed))

    def _clear(self) -> None:
        self._kems.clear()
        self._signatures.clear()

    def provider(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise UnsupportedAlgorithm(
                f"no provider named {name!r}; registered: {', '.join(self._providers)}"
            ) from None

    def providers(self) -> list[ProviderStatus]:
        """Every registered provider, available or not, with the reason and version."""
        return [self._providers[n].status() for n in self.preference()]

    # -- names ------------------------------------------------------------------------------

    def canonical_name(self, name: str) -> str:
        """Map an alias or a differently-cased name to the standard spelling."""
        if name in _ALIASES:
            return _ALIASES[name]
        lowered = name.lower()
        for alias, target in _ALIASES.items():
            if alias.lower() == lowered:
                return target
        for known in (*_hybrid.HYBRID_NAMES, *self._all_names()):
            if known.lower() == lowered:
                return known
        return name

    def _all_names(self) -> list[str]:
        names: list[str] = []
        for provider_name in self.preference():
            provider = self._providers[provider_name]
            names += provider.kem_names()
            names += provider.signature_names()
        return names

    def kem_providers(self, name: str) -> list[str]:
        """Providers (in preference order) that can serve KEM ``name`` here."""
        result = []
        for provider_name in self.preference():
            try:
                self.kem(name, provider=provider_name)
            except UnsupportedAlgorithm:
                continue
            result.append(provider_name)
        return result

    def signature_providers(self, name: str) -> list[str]:
        name = self.canonical_name(name)
        return [p for p in self.preference() if name in self._providers[p].signature_names()]

    def available_kems(self) -> list[str]:
        """Standard names of every KEM some available provider can serve (hybrids included)."""
        names: dict[str, None] = {}
        for provider_name in self.preference():
            names.update(dict.fromkeys(self._providers[provider_name].kem_names()))
        for hybrid in _hybrid.HYBRID_NAMES:
            if self.kem_providers(hybrid):
                names[hybrid] = None
        return list(names)

    def available_signatures(self) -> list[str]:
        names: dict[str, None] = {}
        for provider_name in self.preference():
            names.update(dict.fromkeys(self._providers[provider_name].signature_names()))
        return list(names)

    # -- lookups ----------------------------------------------------------------------------

    def _order(self, provider: str | None, preference: Sequence[str] | None) -> list[str]:
        if provider is not None:
            self.provider(provider)  # raises for an unknown name
            return [provider]
        if preference is not None:
            return [p for p in preference if p in self._providers] or list(self.preference())
        return list(self.preference())

    def kem(
        self, name: str, provider: str | None = None, preference: Sequence[str] | None = None
    ) -> Kem:
        key = (name, provider, tuple(preference or ()))
        cached = self._kems.get(key)
        if cached is not None:
            return cached
        canonical = self.canonical_name(name)
        canonical_key = (canonical, provider, key[2])
        cached = self._kems.get(canonical_key)
        if cached is not None:
            self._kems[key] = cached
            return cached
        reasons: list[str] = []
        for provider_name in self._order(provider, preference):
            candidate = self._providers[provider_name]
            try:
                if canonical in _hybrid.HYBRID_NAMES:
                    component = candidate.kem(_hybrid.component_of(canonical))
                    found = _hybrid.build(canonical, component)
                else:
                    found = candidate.kem(canonical)
            except UnsupportedAlgorithm as exc:
                reasons.append(f"{provider_name}: {exc}")
                continue
            with self._lock:
                self._kems[key] = self._kems[canonical_key] = found
            return found
        raise UnsupportedAlgorithm(
            f"no available provider offers KEM {name!r} ({'; '.join(reasons) or 'none tried'}); "
            "see `agile pqc list` for what is available"
        )

    def signature(
        self, name: str, provider: str | None = None, preference: Sequence[str] | None = None
    ) -> SignatureScheme:
        key = (name, provider, tuple(preference or ()))
        cached = self._signatures.get(key)
        if cached is not None:
            return cached
        canonical = self.canonical_name(name)
        reasons: list[str] = []
        for provider_name in self._order(provider, preference):
            try:
                found = self._providers[provider_name].signature(canonical)
            except UnsupportedAlgorithm as exc:
                reasons.append(f"{provider_name}: {exc}")
                continue
            with self._lock:
                self._signatures[key] = found
            return found
        raise UnsupportedAlgorithm(
            f"no available provider offers signature scheme {name!r} "
            f"({'; '.join(reasons) or 'none tried'}); see `agile pqc list`"
        )


def default_registry() -> Registry:
    """The registry ``pqc`` starts with: the three built-in providers."""
    from pqc._liboqs import LiboqsProvider
    from pqc._pqcrypto import PqcryptoProvider
    from pqc._pyca import CryptographyProvider

    return Registry([CryptographyProvider(), PqcryptoProvider(), LiboqsProvider()])
