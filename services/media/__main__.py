"""`python -m services.media ROLE --region R ...`: run one media-plane process in the foreground.

`region.py` starts these as managed processes; settings come from `LIVEWARD_*` variables.
"""

from __future__ import annotations

import argparse

from liveward.settings import load_settings
from services.media.asgi import configure_logging
from services.media.edge import PLAYLIST_TTL_S, EdgePolicy, run_edge
from services.media.ffmpeg_ingest import run_ffmpeg_ingest
from services.media.ffmpeg_packager import run_ffmpeg_packager
from services.media.ingest import run_ingest
from services.media.layout import DEFAULT_CONTENT
from services.media.origin import run_origin
from services.media.packager import run_packager
from services.media.runtime import Lifetime

ROLES = ("ingest", "packager", "origin", "edge")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.media", description=__doc__)
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--region", required=True)
    parser.add_argument("--content", action="append", help="content id (repeatable)")
    parser.add_argument("--name", default="a", help="which packager of the pair (a or b)")
    parser.add_argument("--cdn", help="the CDN an edge belongs to")
    parser.add_argument("--playlist-ttl-s", type=float, default=PLAYLIST_TTL_S)
    parser.add_argument("--lifetime-s", type=float, help="exit after this many seconds")
    parser.add_argument(
        "--epochs-topic", help="key epochs topic of an ffmpeg packager (default keys.epochs)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging()
    settings = load_settings()
    contents = tuple(args.content or (DEFAULT_CONTENT,))
    lifetime = Lifetime(args.lifetime_s)
    real = settings.media.source == "ffmpeg"
    if args.role == "ingest":
        lifetime.install_signals()
        ingest = run_ffmpeg_ingest if real else run_ingest
        ingest(settings, args.region, contents, lifetime)
    elif args.role == "packager" and real:
        lifetime.install_signals()
        run_ffmpeg_packager(
            settings, args.region, args.name, contents, lifetime, epochs_topic=args.epochs_topic
        )
    elif args.role == "packager":
        lifetime.install_signals()
        run_packager(settings, args.region, args.name, contents, lifetime)
    elif args.role == "origin":
        run_origin(settings, args.region, contents, lifetime)
    else:
        if not args.cdn:
            raise SystemExit("an edge needs --cdn")
        run_edge(
            settings,
            args.region,
            args.cdn,
            lifetime,
            EdgePolicy(playlist_ttl_s=args.playlist_ttl_s),
        )


if __name__ == "__main__":
    main()
