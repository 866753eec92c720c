from exgan_cli.cli import main

main()
