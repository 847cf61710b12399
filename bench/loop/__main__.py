from bench.loop.cli import main

main()
