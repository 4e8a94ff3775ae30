from rlm_mcp.cli.entry import main

if __name__ == "__main__":
    main()
